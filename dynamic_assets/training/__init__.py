"""Training, without Dagster: features from curated frames (`features`), fitting, scoring and
MLflow tracking (`train`), skops checkpoints and their metadata (`checkpoint`), the `models`,
`experiments` and `model_checkpoints` rows (`records`), and the audit of checkpoint folders
pushed to the drive (`audit`)."""
