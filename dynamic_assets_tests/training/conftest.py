from __future__ import annotations

import pytest

from dynamic_assets.demo.seed import SEED_VERSIONS
from dynamic_assets_tests.support.staging import curate_and_fingerprint
from dynamic_assets_tests.support.tracking import local_store


@pytest.fixture
def tracking(tmp_path):
    return local_store(tmp_path / "mlflow")


@pytest.fixture
def market(db, drive, decls) -> dict[str, str]:
    """Both demo market versions curated and fingerprinted: version -> fingerprint."""
    return {
        v: curate_and_fingerprint(db, drive, decls, "market", v) for v in SEED_VERSIONS["market"]
    }
