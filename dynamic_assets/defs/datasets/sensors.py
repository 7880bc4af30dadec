"""The drive sensor and the hourly reconcile schedule.

The sensor lists the drive (no downloads), keeps one short digest per version folder in a
compressed cursor, and for each version whose file set changed registers the version as a
dynamic partition and requests one run keyed by (dataset, version, file-set digest), so repeated
ticks never start duplicate runs. Files it will not take (undeclared dataset, unsafe name,
unknown format, empty version folder) are recorded in `onedrive_ingest` and named in the log.
"""

import base64
import hashlib
import json
import zlib

import dagster as dg

from dynamic_assets import registry
from dynamic_assets.config import Declarations
from dynamic_assets.defs.datasets.assets import ingest_job_name
from dynamic_assets.defs.datasets.partitions import partitions_name
from dynamic_assets.defs.resources import DriveResource, PostgresResource
from dynamic_assets.discovery import Discovery, discover
from dynamic_assets.pipeline import outstanding

CURSOR_VERSION = 1


def encode_cursor(state: dict) -> str:
    raw = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode()


def decode_cursor(cursor: str | None) -> dict:
    if not cursor:
        return {"v": CURSOR_VERSION, "versions": {}, "problems": []}
    try:
        state = json.loads(zlib.decompress(base64.urlsafe_b64decode(cursor.encode())))
    except (ValueError, zlib.error):
        return {"v": CURSOR_VERSION, "versions": {}, "problems": []}
    if state.get("v") != CURSOR_VERSION:
        return {"v": CURSOR_VERSION, "versions": {}, "problems": []}
    return state


def _problem_token(path: str, etag: str) -> str:
    return hashlib.sha1(f"{path}\x00{etag}".encode("utf-8", "surrogateescape")).hexdigest()[:12]


def plan_tick(
    found: Discovery, cursor: dict, existing: dict[str, set[str]]
) -> tuple[list[dg.RunRequest], list, dict, list]:
    """Run requests, partition additions, the next cursor and the new problems for one tick."""
    seen = cursor.get("versions", {})
    next_versions: dict[str, str] = {}
    requests: list[dg.RunRequest] = []
    additions: dict[str, list[str]] = {}
    for key, vf in sorted(found.versions.items()):
        # An empty version folder gets a run too: it fails naming the folder, visibly in the UI.
        digest = vf.digest
        next_versions[key] = digest
        if seen.get(key) == digest:
            continue
        if vf.version not in existing.get(vf.dataset, set()):
            additions.setdefault(vf.dataset, []).append(vf.version)
        requests.append(
            dg.RunRequest(
                job_name=ingest_job_name(vf.dataset),
                partition_key=vf.version,
                run_key=f"{vf.dataset}|{vf.version}|{digest}",
                tags={"dataset": vf.dataset, "version": vf.version, "trigger": "drive_sensor"},
            )
        )
    old_problems = set(cursor.get("problems", []))
    new_problems = []
    tokens = []
    for p in found.problems:
        token = _problem_token(p.path, p.item.etag if p.item else "-")
        tokens.append(token)
        if token not in old_problems:
            new_problems.append(p)
    partition_requests = [
        dg.AddDynamicPartitionsRequest(partitions_def_name=partitions_name(ds), partition_keys=keys)
        for ds, keys in sorted(additions.items())
    ]
    next_cursor = {"v": CURSOR_VERSION, "versions": next_versions, "problems": sorted(tokens)}
    return requests, partition_requests, next_cursor, new_problems


def build_drive_sensor(decls: Declarations, jobs: list) -> dg.SensorDefinition:
    @dg.sensor(
        name="drive_sensor",
        jobs=jobs,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Lists the drive's dataset folders and starts a run for each new or changed version.",
    )
    def drive_sensor(
        context: dg.SensorEvaluationContext, drive: DriveResource, postgres: PostgresResource
    ) -> dg.SensorResult:
        found = discover(drive.get(), decls)
        existing = {
            ds.name: set(context.instance.get_dynamic_partitions(partitions_name(ds.name)))
            for ds in decls.datasets
        }
        cursor = decode_cursor(context.cursor)
        requests, additions, next_cursor, new_problems = plan_tick(found, cursor, existing)
        if new_problems:
            with postgres.database().connect() as conn:
                for p in new_problems:
                    registry.record_problem(
                        conn,
                        path=p.path,
                        reason=p.reason,
                        status=p.status,
                        dataset=p.dataset,
                        version=p.version,
                        item=p.item,
                    )
            for p in new_problems:
                context.log.warning(f"not taken: {p.message}")
        if requests:
            names = [f"{r.tags['dataset']} {r.partition_key}" for r in requests]
            more = f" and {len(names) - 10} more" if len(names) > 10 else ""
            context.log.info(
                f"{len(requests)} version(s) to bring in: {', '.join(names[:10])}{more}"
            )
        return dg.SensorResult(
            run_requests=requests,
            dynamic_partitions_requests=additions,
            cursor=encode_cursor(next_cursor),
        )

    return drive_sensor


def build_reconcile_schedule(ds_name: str, decls: Declarations, job) -> dg.ScheduleDefinition:
    """An hourly safety net for one dataset: runs every version whose files have not reached curated."""

    @dg.schedule(
        name=f"hourly_reconcile_{ds_name}",
        cron_schedule="0 * * * *",
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Compares the drive's {ds_name} folders with what reached curated and runs what is missing.",
    )
    def hourly_reconcile(
        context: dg.ScheduleEvaluationContext, drive: DriveResource, postgres: PostgresResource
    ):
        found = discover(drive.get(), decls, dataset=ds_name)
        pending, _ = outstanding(postgres.database(), found)
        name = partitions_name(ds_name)
        requests = []
        for vf in pending:
            if not context.instance.has_dynamic_partition(name, vf.version):
                context.instance.add_dynamic_partitions(name, [vf.version])
            requests.append(
                dg.RunRequest(
                    partition_key=vf.version,
                    run_key=f"reconcile|{vf.dataset}|{vf.version}|{vf.digest}",
                    tags={"dataset": vf.dataset, "version": vf.version, "trigger": "reconcile"},
                )
            )
        if not requests:
            return dg.SkipReason(f"every {ds_name} version in the drive has reached curated")
        return requests

    return hourly_reconcile
