"""Shared by the training tests: a migrated MLflow sqlite store made once per test process and
copied per test (creating one runs MLflow's migrations: seconds), and curated, fingerprinted
demo market versions."""

from __future__ import annotations

import shutil
import tempfile
from functools import cache
from pathlib import Path

from dynamic_assets.datasets import pipeline
from dynamic_assets.db import Database
from dynamic_assets.declarations.model import Declarations
from dynamic_assets.drive import LocalDrive
from dynamic_assets.provenance.fingerprint import compute_fingerprint, store_fingerprint
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


def curate_and_fingerprint(
    db: Database, drive: LocalDrive, decls: Declarations, dataset: str, version: str
) -> str:
    """Stage, curate and fingerprint one version as the ingest job does; its fingerprint."""
    ds = decls.dataset(dataset)
    pipeline.stage(db, drive, decls, ds, version)
    pipeline.curate(db, drive.kind, ds, version)
    with db.connect() as conn:
        fp = compute_fingerprint(conn, ds, version)
        store_fingerprint(conn, fp)
    return fp.fingerprint
