"""The trainers' API: read a curated version by dataset and version, through Postgres (ADBC) or
Supabase REST, optionally pinned to a fingerprint."""

from dynamic_assets.read.curated import (
    FingerprintMismatch,
    curated_versions,
    declared_dataset,
    default_database,
    read_curated,
)
from dynamic_assets.read.frames import DatasetNotFound

__all__ = [
    "DatasetNotFound",
    "FingerprintMismatch",
    "curated_versions",
    "declared_dataset",
    "default_database",
    "read_curated",
]
