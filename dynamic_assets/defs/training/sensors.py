"""The checkpoint sensor and the training automation sensor.

`model_checkpoints_sensor` lists `model-checkpoints/` (no downloads but each new or changed run
folder's small `metadata.json`), keeps a compressed cursor with one 16-character listing digest
per run folder, and for each new or changed folder records in `model_checkpoints` whether it can
be traced to curated data: a traceable checkpoint pushed by hand is registered in `models` and
observed on its model's asset; a folder whose metadata is missing, invalid or names a
fingerprint the registry does not know is observed with the reason and named in the log.

`training_automation_sensor` evaluates the training assets' automation conditions (Dagster's
default automation sensor starts stopped; this one is on by default).
"""

import base64
import json
import time
import zlib

import dagster as dg

from dynamic_assets.declarations.model import Declarations
from dynamic_assets.defs.datasets.partitions import partitions_name
from dynamic_assets.defs.resources import DriveResource, PostgresResource
from dynamic_assets.defs.training.keys import model_key
from dynamic_assets.training.audit import Verdict, inspect_folder, record_verdict, scan_checkpoints

CURSOR_VERSION = 1
TICK_BUDGET_SECONDS = 40.0  # folders left over are inspected on the next tick


def encode_cursor(folders: dict[str, str]) -> str:
    raw = json.dumps({"v": CURSOR_VERSION, "f": folders}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(zlib.compress(raw.encode(), 9)).decode()


def decode_cursor(cursor: str | None) -> dict[str, str]:
    if not cursor:
        return {}
    try:
        state = json.loads(zlib.decompress(base64.urlsafe_b64decode(cursor.encode())))
    except (ValueError, zlib.error):
        return {}
    if not isinstance(state, dict) or state.get("v") != CURSOR_VERSION:
        return {}
    return dict(state.get("f") or {})


def _observation(
    verdict: Verdict, model_id: int | None, partition: str | None
) -> dg.AssetObservation:
    meta = verdict.metadata
    md: dict = {
        "checkpoint": verdict.folder.path,
        "traceable": verdict.traceable,
        "status": verdict.status,
        "run_id": verdict.folder.run_id,
    }
    if verdict.problem:
        md["problem"] = verdict.problem
    if meta is not None:
        md.update(
            dataset=meta.dataset,
            dataset_version=meta.dataset_version,
            data_fingerprint=meta.data_fingerprint,
            framework=f"{meta.framework} {meta.framework_version}",
            git_commit=meta.git_commit,
            trained_by=meta.trained_by,
            **{f"metric/{k}": float(v) for k, v in meta.metrics.items()},
        )
        if meta.mlflow_run_id:
            md["mlflow_run_id"] = meta.mlflow_run_id
    if verdict.known_as:
        md["fingerprint_known_as"] = verdict.known_as
    if model_id is not None:
        md["models_row_id"] = model_id
    return dg.AssetObservation(
        asset_key=model_key(verdict.folder.model), partition=partition, metadata=md
    )


def build_checkpoint_sensor(decls: Declarations) -> dg.SensorDefinition:
    datasets = {m.name: m.dataset for m in decls.models}

    @dg.sensor(
        name="model_checkpoints_sensor",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Lists model-checkpoints/ in the drive: registers run folders whose "
        "metadata.json is valid and traceable to a curated fingerprint, and reports the others.",
    )
    def model_checkpoints_sensor(
        context: dg.SensorEvaluationContext, drive: DriveResource, postgres: PostgresResource
    ) -> dg.SensorResult:
        source = drive.get()
        seen = decode_cursor(context.cursor)
        folders, stray = scan_checkpoints(source)
        started = time.monotonic()
        next_seen: dict[str, str] = {}
        events: list[dg.AssetObservation] = []
        pending = left = 0
        partitions: dict[str, set[str]] = {}
        with postgres.database().connect(autocommit=True) as conn:
            for folder in folders:
                if seen.get(folder.path) == folder.digest:
                    next_seen[folder.path] = folder.digest
                    continue
                if time.monotonic() - started > TICK_BUDGET_SECONDS:
                    left += 1
                    continue
                verdict = inspect_folder(source, conn, folder)
                if verdict is None:
                    pending += 1
                    continue
                with conn.transaction():
                    model_id, new = record_verdict(conn, verdict, source.kind)
                next_seen[folder.path] = folder.digest
                if verdict.traceable and not new:
                    continue  # registered already (the training asset registers its own runs)
                partition = None
                dataset = datasets.get(folder.model)
                if dataset and verdict.metadata is not None:
                    if dataset not in partitions:
                        partitions[dataset] = set(
                            context.instance.get_dynamic_partitions(partitions_name(dataset))
                        )
                    version = verdict.metadata.dataset_version
                    partition = version if version in partitions[dataset] else None
                events.append(_observation(verdict, model_id, partition))
                if verdict.traceable:
                    context.log.info(f"registered checkpoint {folder.path}")
                else:
                    context.log.warning(
                        f"untraceable checkpoint ({verdict.status}): {verdict.problem}"
                    )
        for path in stray[:20]:
            context.log.warning(
                f"not a checkpoint: {path} (a run's files go in model-checkpoints/<model>/<run-id>/)"
            )
        if pending or left:
            context.log.info(
                f"{pending} folder(s) without metadata.json yet (waiting for the upload), "
                f"{left} left for the next tick"
            )
        return dg.SensorResult(asset_events=events, cursor=encode_cursor(next_seen))

    return model_checkpoints_sensor


def build_training_automation_sensor(
    keys: list[dg.AssetKey],
) -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        "training_automation_sensor",
        target=dg.AssetSelection.assets(*keys),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description="Requests a training run for each new dataset version and each version "
        "whose fingerprint changed (the training assets' automation conditions).",
    )
