"""Training runs: fit a declared model on one curated version, score it on a held-out split,
track it in MLflow, checkpoint it in the drive and register it in Postgres.

Plain Python (no Dagster); the training asset calls `train_version` inside `tracked_run`, so
the MLflow run lasts as long as the Dagster step and ends FAILED if anything in it fails.

The data comes from `read_curated(..., expected_fingerprint=...)`: a run planned on a fingerprint
trains on exactly that data or not at all. MLflow gets the parameters, the metrics, the dataset
as an input (digest: the fingerprint's first 36 hex digits, MLflow's longest digest; the whole
fingerprint is in the `data_fingerprint` tag and the source), tags (git commit, Dagster run id,
dataset, version) and the model (skops). The drive gets `model-checkpoints/<model>/<run-id>/`:
the skops weights, the MLflow artifacts under `mlflow/`, and `metadata.json`.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dynamic_assets.db import Database
from dynamic_assets.declarations.model import Dataset, Model
from dynamic_assets.drive.base import Drive
from dynamic_assets.training import checkpoint as ckpt
from dynamic_assets.training import records
from dynamic_assets.training.features import Split, TrainingFrame, build_training_frame, split

MLFLOW_DIGEST_CHARS = 36  # mlflow.utils.validation.MAX_DATASET_DIGEST_SIZE
FRAMEWORK = "scikit-learn"


class TrainingError(RuntimeError):
    """A training run could not be made; the message names the model, version and reason."""


@dataclass(frozen=True)
class Tracking:
    """Where MLflow runs go: a tracking URI and, for a local store, the artifact folder of the
    experiments created here (None: the tracking server's default)."""

    tracking_uri: str
    artifact_root: str | None = None


def config_hash(model: Model) -> str:
    """SHA-256 of everything in the declaration that changes the trained model or its score
    (not its description, owners or version selection)."""
    data = model.model_dump(mode="json", exclude={"description", "owners", "versions"})
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


@cache
def git_commit() -> tuple[str, bool]:
    """The commit of the training code and whether the working tree has uncommitted changes.

    `DYNAMIC_ASSETS_GIT_COMMIT` wins (for deployments without a .git folder); otherwise git is
    asked about the package's checkout; "unknown" if neither answers.
    """
    env = os.environ.get("DYNAMIC_ASSETS_GIT_COMMIT", "").strip()
    if env:
        return env, False
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    return commit or "unknown", bool(status)


def import_estimator(path: str) -> type:
    """The estimator class at a dotted path, e.g. sklearn.linear_model.Ridge."""
    module, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise TrainingError(f"estimator {path}: cannot import {module}: {exc}") from None
    except AttributeError:
        raise TrainingError(f"estimator {path}: {module} has no {name}") from None
    if not isinstance(cls, type) or not all(hasattr(cls, m) for m in ("fit", "predict")):
        raise TrainingError(f"estimator {path} is not a class with fit() and predict()")
    return cls


def build_pipeline(model: Model, numeric: list[str], categorical: list[str]) -> Any:
    """Standardize numeric features, one-hot encode the others, then the declared estimator."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cls = import_estimator(model.estimator)
    params = dict(model.hyperparameters)
    try:
        estimator = cls(**params)
    except TypeError as exc:
        raise TrainingError(
            f"model {model.name}: {model.estimator} does not take these hyperparameters "
            f"{sorted(params)}: {exc}"
        ) from None
    seeded = hasattr(estimator, "get_params") and "random_state" in estimator.get_params()
    if seeded and "random_state" not in params:
        estimator.set_params(random_state=model.random_state)
    steps = []
    if numeric:
        steps.append(("numeric", StandardScaler(), numeric))
    if categorical:
        steps.append(
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                categorical,
            )
        )
    return Pipeline([("prepare", ColumnTransformer(steps)), ("model", estimator)])


def evaluate(model: Model, pipeline: Any, sp: Split) -> tuple[dict[str, float], np.ndarray]:
    """Held-out metrics (`test_*`), the training fit and a naive baseline, and the predictions."""
    from sklearn import metrics as m

    predicted = pipeline.predict(sp.X_test)
    fitted = pipeline.predict(sp.X_train)
    if model.task == "regression":
        y_test = sp.y_test.to_numpy(dtype="float64")
        y_train = sp.y_train.to_numpy(dtype="float64")
        baseline = np.full(len(y_test), y_train.mean())
        scores = {
            "test_rmse": m.root_mean_squared_error(y_test, predicted),
            "test_mae": m.mean_absolute_error(y_test, predicted),
            "test_r2": m.r2_score(y_test, predicted),
            "train_rmse": m.root_mean_squared_error(y_train, fitted),
            "baseline_rmse": m.root_mean_squared_error(y_test, baseline),
        }
    else:
        y_test = sp.y_test.astype(str).to_numpy()
        y_train = sp.y_train.astype(str).to_numpy()
        predicted_s = np.asarray(predicted).astype(str)
        majority = pd.Series(y_train).mode().iloc[0]
        scores = {
            "test_accuracy": m.accuracy_score(y_test, predicted_s),
            "test_f1": m.f1_score(y_test, predicted_s, average="macro"),
            "train_accuracy": m.accuracy_score(y_train, np.asarray(fitted).astype(str)),
            "baseline_accuracy": m.accuracy_score(y_test, np.full(len(y_test), majority)),
        }
        if hasattr(pipeline, "predict_proba"):
            try:
                proba = pipeline.predict_proba(sp.X_test)
                labels = [str(c) for c in pipeline.classes_]
                scores["test_log_loss"] = m.log_loss(y_test, proba, labels=labels)
            except (AttributeError, ValueError):
                pass  # an estimator without probabilities, or a class missing from the test set
    return {k: float(v) for k, v in scores.items()}, predicted


@dataclass(frozen=True)
class Fitted:
    """A fitted model and how it scored."""

    pipeline: Any
    frame: TrainingFrame
    split: Split
    metrics: dict[str, float]
    predictions: np.ndarray
    seconds: float


def fit_model(model: Model, ds: Dataset, frame: pd.DataFrame) -> Fitted:
    """Build features from a curated frame, split, fit and evaluate (no tracking, no I/O)."""
    started = time.perf_counter()
    tf = build_training_frame(frame, model, ds)
    sp = split(tf, model)
    pipeline = build_pipeline(model, tf.numeric, tf.categorical)
    try:
        pipeline.fit(sp.X_train, sp.y_train)
    except (ValueError, TypeError) as exc:
        raise TrainingError(
            f"model {model.name}: {model.estimator} failed to fit {len(sp.X_train)} rows: {exc}"
        ) from exc
    scores, predicted = evaluate(model, pipeline, sp)
    return Fitted(pipeline, tf, sp, scores, predicted, time.perf_counter() - started)


def _curated_source_class():
    """An MLflow dataset source for a curated table version (built on first use, registered
    with MLflow so that `mlflow.data.get_source(...)` can load it back)."""
    global _SOURCE_CLASS
    if _SOURCE_CLASS is not None:
        return _SOURCE_CLASS
    from mlflow.data.dataset_source import DatasetSource
    from mlflow.data.dataset_source_registry import register_dataset_source

    class CuratedTableSource(DatasetSource):
        """A version of a curated table: `ai_curated.<dataset>` rows of one `dataset_version`,
        identified by the version's fingerprint."""

        def __init__(self, dataset: str, version: str, fingerprint: str, database: str = ""):
            self.dataset = dataset
            self.version = version
            self.fingerprint = fingerprint
            self.database = database

        @staticmethod
        def _get_source_type() -> str:
            return "dynamic_assets_curated"

        def load(self) -> pd.DataFrame:
            from dynamic_assets.read.curated import read_curated

            return read_curated(self.dataset, self.version, expected_fingerprint=self.fingerprint)

        @staticmethod
        def _can_resolve(raw_source: Any) -> bool:
            return False

        @classmethod
        def _resolve(cls, raw_source: Any) -> CuratedTableSource:
            raise NotImplementedError("a curated table source is built, not resolved")

        def to_dict(self) -> dict[str, Any]:
            return {
                "table": f"ai_curated.{self.dataset}",
                "dataset": self.dataset,
                "version": self.version,
                "filter": f"dataset_version = '{self.version}'",
                "fingerprint": self.fingerprint,
                "database": self.database,
            }

        @classmethod
        def from_dict(cls, source_dict: dict[Any, Any]) -> CuratedTableSource:
            return cls(
                source_dict["dataset"],
                source_dict["version"],
                source_dict["fingerprint"],
                source_dict.get("database", ""),
            )

    register_dataset_source(CuratedTableSource)
    _SOURCE_CLASS = CuratedTableSource
    return CuratedTableSource


_SOURCE_CLASS = None


def curated_dataset(
    frame: pd.DataFrame, dataset: str, version: str, fingerprint: str, database: str = ""
):
    """The curated version as an MLflow dataset: source = the curated table and version,
    digest = the fingerprint (its first 36 hex digits: MLflow's limit)."""
    import mlflow

    source = _curated_source_class()(dataset, version, fingerprint, database)
    return mlflow.data.from_pandas(
        frame, source=source, name=f"{dataset}@{version}", digest=fingerprint[:MLFLOW_DIGEST_CHARS]
    )


def _local_store_dirs(tracking: Tracking) -> None:
    uri = tracking.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if tracking.artifact_root and "://" not in tracking.artifact_root:
        Path(tracking.artifact_root).mkdir(parents=True, exist_ok=True)


def ensure_experiment(tracking: Tracking, name: str) -> str:
    """The id of the MLflow experiment `name`, created (with its artifact folder) if needed."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking.tracking_uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if tracking.artifact_root:
        root = tracking.artifact_root
        location = f"{root.rstrip('/')}/{name}" if "://" in root else Path(root, name).as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except mlflow.exceptions.MlflowException:
        found = client.get_experiment_by_name(name)  # created by a concurrent run
        if found is None:
            raise
        return found.experiment_id


@contextmanager
def tracked_run(
    tracking: Tracking, experiment: str, *, run_name: str, tags: dict[str, str]
) -> Iterator[Any]:
    """An MLflow run in `experiment` against `tracking`, active for the block and ended with it
    (FINISHED, or FAILED if the block raises). MLflow's global tracking URI (and the
    MLFLOW_TRACKING_URI variable it exports) points at `tracking` for the block only."""
    import mlflow

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no usage reports from pipelines
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # step logs, not bars
    _local_store_dirs(tracking)
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(tracking.tracking_uri)  # also exports MLFLOW_TRACKING_URI
    try:
        experiment_id = ensure_experiment(tracking, experiment)
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
            yield run
    finally:
        # Put back what was there, so that the process's environment (read by the settings of
        # anything started later in it) does not keep pointing at this store; None unsets.
        mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]


def _mirror_files(run_id: str, model_uri: str) -> dict[str, bytes]:
    """The MLflow run's artifacts and the logged model's, as `mlflow/run/...` and
    `mlflow/model/...` files for the checkpoint folder."""
    import mlflow

    files: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="dai-mlflow-") as tmp:
        for prefix, kwargs in (
            ("mlflow/run", {"run_id": run_id, "artifact_path": ""}),
            ("mlflow/model", {"artifact_uri": model_uri}),
        ):
            dst = Path(tmp, prefix.replace("/", "_"))
            dst.mkdir()
            local = Path(mlflow.artifacts.download_artifacts(dst_path=str(dst), **kwargs))
            for path in sorted(p for p in local.rglob("*") if p.is_file()):
                files[f"{prefix}/{path.relative_to(local).as_posix()}"] = path.read_bytes()
    return files


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


def run_tags(
    model: Model, version: str, fingerprint: str, dagster_run_id: str | None
) -> dict[str, str]:
    """The tags of a training run in MLflow."""
    commit, dirty = git_commit()
    tags = {
        "model": model.name,
        "dataset": model.dataset,
        "dataset_version": version,
        "data_fingerprint": fingerprint,
        "config_hash": config_hash(model),
        "git_commit": commit,
        "git_dirty": str(dirty).lower(),
        "mlflow.source.git.commit": commit,
        "estimator": model.estimator,
    }
    if dagster_run_id:
        tags["dagster_run_id"] = dagster_run_id
    return tags


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
    mirror = _mirror_files(run_id, info.model_uri)

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
