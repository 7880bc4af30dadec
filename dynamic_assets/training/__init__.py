"""Training, without Dagster: features from curated frames (`features`), fitting and scoring
(`fit`), MLflow tracking (`tracking`), what identifies a run (`identity`), one training run from
curated data to checkpoint and registry rows (`train`), skops checkpoints and their metadata
(`checkpoint`), the `models`, `experiments` and `model_checkpoints` rows and which versions a
model has no run for (`records`), and the audit of checkpoint folders pushed to the drive
(`audit`)."""
