"""A local MLflow tracking store for tests: a migrated sqlite store made once per test process
and copied per test (creating one runs MLflow's migrations: seconds)."""

from __future__ import annotations

import shutil
import tempfile
from functools import cache
from pathlib import Path

from dynamic_assets.training.tracking import Tracking


@cache
def _template_store() -> Path:
    import mlflow

    folder = Path(tempfile.mkdtemp(prefix="dai-mlflow-template-"))
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
    return folder / "mlflow.db"


def local_store(folder: Path) -> Tracking:
    """A fresh local MLflow store (sqlite + artifacts) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_template_store(), folder / "mlflow.db")
    return Tracking(f"sqlite:///{folder / 'mlflow.db'}", str(folder / "artifacts"))
