"""Curated, fingerprinted versions of the demo datasets for the storage tier tests (embeddings
declared internal here, so that a dataset with vectors can be archived)."""

from __future__ import annotations

import pytest

from dynamic_assets_tests.support.staging import curate_and_fingerprint

VERSIONS = [
    ("market", "2024-06-01"),
    ("market", "2024-07-01"),
    ("corpus", "v1.0"),
    ("embeddings", "v2.3"),
]


@pytest.fixture
def tier_decls(decls):
    decls.dataset("embeddings").sensitivity = "internal"
    return decls


@pytest.fixture
def curated(db, drive, tier_decls):
    for name, version in VERSIONS:
        curate_and_fingerprint(db, drive, tier_decls, name, version)
    return db
