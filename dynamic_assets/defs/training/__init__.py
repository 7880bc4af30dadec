"""Training: one training asset per declared model, the checkpoint sensor, the MLflow resource."""
