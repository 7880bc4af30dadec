"""MLflow tracking of training runs: where runs go (`Tracking`), the experiment and the run that
lasts as long as the training step (`tracked_run`), the curated version as an MLflow dataset input
(source: the curated table and version; digest: the fingerprint's first 36 hex digits, MLflow's
longest digest) and the run's artifacts mirrored into the checkpoint folder."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas loads with the first model trained, not with the definitions
    import pandas as pd

MLFLOW_DIGEST_CHARS = 36  # mlflow.utils.validation.MAX_DATASET_DIGEST_SIZE


@dataclass(frozen=True)
class Tracking:
    """Where MLflow runs go: a tracking URI and, for a local store, the artifact folder of the
    experiments created here (None: the tracking server's default)."""

    tracking_uri: str
    artifact_root: str | None = None


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
        identified by the version's fingerprint. `database` names where the table lives (its
        database, host and port: `Database.describe()`), never a connection string, which
        may carry a password and would be stored in the tracking store."""

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
    from mlflow.data.pandas_dataset import from_pandas

    source = _curated_source_class()(dataset, version, fingerprint, database)
    return from_pandas(
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
        # anything started later in it) does not keep pointing at this store; None unsets
        # (MLflow's annotation says `str | Path`, its code takes None to mean "not set").
        mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]


def mirror_files(run_id: str, model_uri: str) -> dict[str, bytes]:
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
