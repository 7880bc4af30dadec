from __future__ import annotations

import pytest

from dynamic_assets.defs.training.resources import local_tracking
from dynamic_assets_tests.support.tracking import local_store


@pytest.fixture(autouse=True)
def mlflow_store(settings):
    """The code location's local MLflow store under the test's home folder, pre-migrated."""
    tracking = local_store(settings.home / "mlflow")
    assert tracking == local_tracking(settings)
    return tracking
