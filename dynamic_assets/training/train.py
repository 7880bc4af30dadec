"""Training runs: fit a declared model on one curated version, score it on a held-out split,
track it in MLflow, checkpoint it in the drive and register it in Postgres.

Plain Python (no Dagster); the training asset calls `train_version` inside
`tracking.tracked_run`, so the MLflow run lasts as long as the Dagster step and ends FAILED if
anything in it fails. Fitting and scoring are in `fit`, the MLflow pieces in `tracking`, the
configuration hash, commit and tags in `identity`; this module puts one run together.

The data comes from `read_curated(..., expected_fingerprint=...)`: a run planned on a fingerprint
trains on exactly that data or not at all. MLflow gets the parameters, the metrics, the dataset
as an input (digest: the fingerprint's first 36 hex digits, MLflow's longest digest; the whole
fingerprint is in the `data_fingerprint` tag and the source), tags (git commit, Dagster run id,
dataset, version) and the model (skops). The drive gets `model-checkpoints/<model>/<run-id>/`:
the skops weights, the MLflow artifacts under `mlflow/`, and `metadata.json`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from dynamic_assets.db import Database
from dynamic_assets.declarations.model import Dataset, Model
from dynamic_assets.drive.base import Drive
from dynamic_assets.training import checkpoint as ckpt
from dynamic_assets.training import records
from dynamic_assets.training.fit import Fitted, fit_model
from dynamic_assets.training.identity import config_hash, git_commit
from dynamic_assets.training.tracking import curated_dataset, mirror_files

FRAMEWORK = "scikit-learn"


@dataclass(frozen=True)
class TrainingOutcome:
    """What one training run made and where it went."""

    model: str
    dataset: str
    version: str
    fingerprint: str
    config_hash: str
    mlflow_run_id: str
    mlflow_experiment_id: str
    mlflow_model_uri: str
    checkpoint: str
    metrics: dict[str, float]
    fitted: Fitted
    model_row_id: int
    experiment_row_id: int
    weights_bytes: int
    seconds: float
    tags: dict[str, str] = field(default_factory=dict)


def train_version(
    db: Database,
    drive: Drive,
    model: Model,
    ds: Dataset,
    version: str,
    fingerprint: str,
    *,
    run: Any,
    dagster_run_id: str | None = None,
) -> TrainingOutcome:
    """One training run inside the active MLflow `run`: read the curated version (refused unless
    it is `fingerprint`), fit, score, log to MLflow, write the checkpoint, register the rows."""
    import mlflow
    import sklearn
    import skops
    from mlflow.models import infer_signature

    from dynamic_assets.read.curated import read_curated

    started = time.perf_counter()
    frame = read_curated(ds.name, version, database=db, expected_fingerprint=fingerprint)
    fitted = fit_model(model, ds, frame)
    chash = config_hash(model)
    commit, dirty = git_commit()
    run_id = run.info.run_id
    experiment_id = run.info.experiment_id

    params = {
        **{k: json.dumps(v) if isinstance(v, dict | list) else v
           for k, v in model.hyperparameters.items()},
        "estimator": model.estimator,
        "features": ",".join(model.features),
        "target": model.target,
        "split": fitted.split.description,
        "test_size": model.test_size,
        "random_state": model.random_state,
        "dataset": ds.name,
        "dataset_version": version,
        "data_fingerprint": fingerprint,
        "train_rows": len(fitted.split.X_train),
        "test_rows": len(fitted.split.X_test),
        "config_hash": chash,
    }  # fmt: skip
    mlflow.log_params(params)
    mlflow.log_metrics(fitted.metrics)
    mlflow.log_input(
        curated_dataset(frame, ds.name, version, fingerprint, db.describe()), context="training"
    )
    with db.connect() as conn:
        record = conn.execute(
            "SELECT fingerprint_record FROM public.datasets WHERE name = %s AND version = %s",
            (ds.name, version),
        ).fetchone()
    mlflow.log_dict(record[0] if record else {}, "fingerprint_record.json")
    mlflow.log_dict(
        {
            "model": model.model_dump(mode="json"),
            "split": fitted.split.description,
            "rows": {
                "curated": fitted.frame.rows_read,
                "usable": len(fitted.frame.X),
                "train": len(fitted.split.X_train),
                "test": len(fitted.split.X_test),
                "purged": fitted.split.purged_rows,
            },
            "metrics": fitted.metrics,
        },
        "training_summary.json",
    )

    weights = ckpt.dump_weights(fitted.pipeline)
    trusted = ckpt.trusted_types(weights)  # refuse now a model that could not be loaded safely
    info = mlflow.sklearn.log_model(
        fitted.pipeline,
        name="model",
        serialization_format="skops",
        skops_trusted_types=trusted,
        signature=infer_signature(fitted.split.X_test, fitted.predictions),
        pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"skops=={skops.__version__}"],
    )
    folder = ckpt.folder_of(model.name, run_id)
    mlflow.set_tag("checkpoint", f"{drive.kind}:{folder}")
    mirror = mirror_files(run_id, info.model_uri)

    metadata = ckpt.CheckpointMetadata(
        model=model.name,
        run_id=run_id,
        created_at=ckpt.now_utc(),
        framework=FRAMEWORK,
        framework_version=sklearn.__version__,
        estimator=model.estimator,
        weights=[
            ckpt.WeightsFile(
                path=ckpt.WEIGHTS_FILE,
                format="skops",
                sha256=ckpt.sha256_hex(weights),
                size_bytes=len(weights),
            )
        ],
        hyperparameters=model.hyperparameters,
        metrics=fitted.metrics,
        features=model.features,
        target=model.target,
        dataset=ds.name,
        dataset_version=version,
        data_fingerprint=fingerprint,
        git_commit=commit,
        git_dirty=dirty,
        mlflow_run_id=run_id,
        mlflow_experiment_id=experiment_id,
        mlflow_model_uri=info.model_uri,
        dagster_run_id=dagster_run_id,
        config_hash=chash,
        trained_by="dynamic_assets",
        split=fitted.split.description,
        primary_metric=f"test_{model.metric}",
        skops_trusted_types=trusted,
    )
    ckpt.write_checkpoint(drive, folder, weights=weights, metadata=metadata, extra_files=mirror)

    with db.connect() as conn:
        model_row, _ = records.register_model(
            conn,
            name=model.name,
            version=run_id,
            dataset_id=records.dataset_id(conn, ds.name, version),
            framework=FRAMEWORK,
            performance_metrics=fitted.metrics,
            deployment_locations={
                "drive": folder,
                "drive_kind": drive.kind,
                "mlflow_run": f"runs:/{run_id}",
                "mlflow_model": info.model_uri,
            },
            metadata={
                "data_fingerprint": fingerprint,
                "dataset": ds.name,
                "dataset_version": version,
                "config_hash": chash,
                "estimator": model.estimator,
                "mlflow_run_id": run_id,
                "mlflow_experiment_id": experiment_id,
                "git_commit": commit,
                "git_dirty": dirty,
                "dagster_run_id": dagster_run_id,
                "primary_metric": f"test_{model.metric}",
                "registered_by": "pipeline",
            },
        )
        experiment_row = records.record_experiment(
            conn,
            name=model.name,
            dataset_version=version,
            model_version=run_id,
            parameters={
                **params,
                "hyperparameters": model.hyperparameters,
                "features": model.features,
            },
            results=fitted.metrics,
            git_commit=commit,
        )
    return TrainingOutcome(
        model=model.name,
        dataset=ds.name,
        version=version,
        fingerprint=fingerprint,
        config_hash=chash,
        mlflow_run_id=run_id,
        mlflow_experiment_id=experiment_id,
        mlflow_model_uri=info.model_uri,
        checkpoint=folder,
        metrics=fitted.metrics,
        fitted=fitted,
        model_row_id=model_row,
        experiment_row_id=experiment_row,
        weights_bytes=len(weights),
        seconds=time.perf_counter() - started,
    )
