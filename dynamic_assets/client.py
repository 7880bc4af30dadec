"""What trainers import: `from dynamic_assets.client import read_curated` (the trainers' API lives in
`dynamic_assets.read`)."""

from dynamic_assets.read import (
    DatasetNotFound,
    FingerprintMismatch,
    curated_versions,
    declared_dataset,
    default_database,
    read_curated,
)

__all__ = [
    "DatasetNotFound",
    "FingerprintMismatch",
    "curated_versions",
    "declared_dataset",
    "default_database",
    "read_curated",
]
