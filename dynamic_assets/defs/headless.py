"""The pipeline run in this process, without a daemon (`dynamic-assets run`).

For each pending (dataset, version) it executes the same ingest job the drive sensor requests
(job name, partition and tags from `defs.datasets`), in the same two runs (staging, then curated
and provenance, as the curate sensor follows it up), then the training job of each (model,
version) that has no run for its current data and configuration, on the home's Dagster instance,
so that the UI shows these runs beside the sensor's. What is pending is decided by the core
(`datasets.pipeline.outstanding`, `training.records.pending_training`), as for the sensor and the
reconcile schedule. Each run gives back a plain outcome record for the command line to print.

Then every version an earlier run left short of its final state (`quality.states`) is driven
forward (`plan_forward`, `advance_version`): a curated version without fingerprint through its
ingest job again, a fingerprinted one not attested (or not anchored, with TON anchoring) through
its attestation asset only.

A run that fails is alerted as the sensors alert it (`defs.alerts.sensors.alert_run_failure`):
the same signed events, delivered and recorded through `webhook_deliveries`, so that a failure
reaches the webhooks whether `dynamic-assets run` or a sensor found it, and only once.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock

from dynamic_assets.datasets import registry
from dynamic_assets.datasets.pipeline import outstanding
from dynamic_assets.db import Database
from dynamic_assets.db.tables import run_lock_holder, try_run_lock
from dynamic_assets.declarations.model import Declarations
from dynamic_assets.drive.base import Drive
from dynamic_assets.drive.discovery import Discovery, Problem, VersionFolder, discover
from dynamic_assets.quality.states import VersionState, not_final, version_states
from dynamic_assets.settings import Settings

if TYPE_CHECKING:
    import dagster as dg

    from dynamic_assets.training.records import Pending

# Planning (`plan_ingest`, `plan_forward`) is plain code: Dagster and the shell's modules are
# imported by the functions that execute runs, so that a `run` with nothing to do never loads
# them (about 3 s of imports).

TRIGGER = "cli"
# Dagster's console log of a run, at INFO: `dynamic-assets run` sends it to a file (`run_log_path`).
LOGGING = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def run_log_path(settings: Settings) -> Path:
    """A new file for Dagster's log of one `dynamic-assets run`:
    `<home>/logs/run-<UTC time>-<process id>.log`."""
    folder = settings.home / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return folder / f"run-{stamp}-{os.getpid()}.log"


@dataclass
class IngestPlan:
    """The versions to bring to curated, the files still quarantined, the files and folders
    not taken (undeclared dataset, refused or passed-over file or folder), already recorded in
    `onedrive_ingest`, the files and versions deleted from the drive (`datasets.deletions`), and
    the datasets this configuration leaves out (`notes`: their files keep what was recorded)."""

    versions: list[VersionFolder]
    quarantined: list[dict]
    problems: list[Problem]
    deleted: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)


@dataclass
class Ingested:
    """The outcome of one ingest run: `curated`, `failed` with (path, reason) per failure, or
    `another run` (the version is another run's, `note` says which)."""

    dataset: str
    version: str
    files: int = 0
    rows: int = 0
    seconds: float = 0.0
    status: str = "pending"
    failures: list[tuple[str, str]] = field(default_factory=list)
    note: str = ""  # one line on a version left to another run
    left: str = ""  # the state an earlier run left the version in (`advance_version`)


@dataclass
class Trained:
    """The outcome of one training run."""

    model: str
    version: str
    status: str  # trained | up to date | skipped | failed
    metric: str = ""
    value: float | None = None
    seconds: float = 0.0
    detail: str = ""


# The settings of the home's instance, written into `<home>/dagster/dagster.yaml`; `dynamic-assets
# dev` runs `dagster dev` with DAGSTER_HOME set to that folder, so that the UI and `dynamic-assets
# run` share one history and one run queue. Its storage is sqlite in the folder (Dagster's
# default). The queue starts `max_concurrent_runs` runs at once (the machine's CPUs unless set),
# one at a time per dataset version (`VERSION_TAG`), and pools count per run.
HOME_INSTANCE_YAML = """\
# The Dagster instance of this dynamic-assets home, shared by `dynamic-assets run` and by
# `dynamic-assets dev` (`dagster dev` with DAGSTER_HOME set to this folder). Storage: sqlite in
# this folder. Rewritten from DYNAMIC_ASSETS_MAX_CONCURRENT_RUNS by both commands.
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
concurrency:
  runs:
    max_concurrent_runs: {max_concurrent_runs}
    tag_concurrency_limits:
      - key: {version_tag}
        value:
          applyLimitPerUniqueValue: true
        limit: 1
  pools:
    granularity: run
telemetry:
  enabled: false
"""


def home_instance_yaml(settings: Settings) -> str:
    """The `dagster.yaml` of the home's instance for these settings."""
    from dynamic_assets.defs.datasets.assets import VERSION_TAG

    return HOME_INSTANCE_YAML.format(
        max_concurrent_runs=settings.max_concurrent_runs, version_tag=VERSION_TAG
    )


def home_instance_folder(settings: Settings) -> Path:
    """`<home>/dagster`, its `dagster.yaml` written (or rewritten when the settings changed).

    Processes preparing it at once take turns (a lock file in the folder); the file is replaced
    whole, so a reader never sees half of it."""
    folder = settings.home / "dagster"
    folder.mkdir(parents=True, exist_ok=True)
    wanted = home_instance_yaml(settings)
    with FileLock(folder / ".instance.lock"):
        config = folder / "dagster.yaml"
        if not config.exists() or config.read_text(encoding="utf-8") != wanted:
            written = folder / "dagster.yaml.new"
            written.write_text(wanted, encoding="utf-8")
            written.replace(config)
    return folder


def dagster_instance(settings: Settings) -> dg.DagsterInstance:
    """The instance of DAGSTER_HOME when set (shared with `dagster dev`), else the home's own
    under `<home>/dagster` (`home_instance_folder`), the one `dynamic-assets dev` serves.

    Processes opening the home's instance at once take turns (a lock file in the folder), so
    that only one of them creates its sqlite storage."""
    import dagster as dg

    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    folder = home_instance_folder(settings)
    with FileLock(folder / ".instance.lock"):
        return dg.DagsterInstance.local_temp(str(folder))


def settings_drive(settings: Settings) -> Drive:
    """The drive of these settings, as the code location's drive resource opens it
    (`defs.resources.DriveResource.get`), without Dagster: the local folder, or OneDrive through
    Graph (the process's shared `GraphDrive` for the same configuration, recording its sync
    events in the settings' database)."""
    od = settings.onedrive
    if od is None:
        from dynamic_assets.drive import LocalDrive

        return LocalDrive(settings.drive_root)
    from dynamic_assets.drive.graph import GraphConfig, graph_drive
    from dynamic_assets.drive.sync_events import recording

    secret = os.environ.get("ONEDRIVE_CLIENT_SECRET") if od.client_secret_set else None
    drive = graph_drive(
        GraphConfig.with_defaults(
            tenant_id=od.tenant_id,
            client_id=od.client_id,
            client_secret=secret or None,
            drive_id=od.drive_id,
            user=od.user,
            root=od.root,
            token_cache=str(od.token_cache),
            graph_url=od.graph_url,
            authority_host=od.authority_host,
            graph_scope=od.graph_scope,
        )
    )
    # Throttling and resyncs are recorded as the sensor's and the run workers' drive records them.
    return recording(drive, settings_database(settings))


def settings_database(settings: Settings) -> Database:
    """The database of these settings, as the code location's Postgres resource opens it:
    SUPABASE_DB_URL when set, else the embedded server in the home."""
    if settings.db_url_set:
        return Database(os.environ.get("SUPABASE_DB_URL"))
    return Database(None, pgdata=settings.pgdata)


def plan_ingest(
    db: Database,
    drive: Drive,
    decls: Declarations,
    *,
    dataset: str | None = None,
    version: str | None = None,
    run_all: bool = False,
) -> IngestPlan:
    """List the drive and decide what to run: every version whose files have not all reached
    curated (with `run_all`, every version with files). Every file or folder not taken is
    recorded: of an undeclared dataset, refused (`quarantined`), or passed over (`ignored`: a
    folder of a declared dataset that is not a version, a file outside a version folder). A
    dataset the configuration leaves out, whose files were recorded under its declaration, is a
    note, not a file refused."""
    found = discover(drive, decls, dataset=dataset, version=version)
    pending, quarantined = outstanding(db, found)
    if run_all:
        pending = [v for v in found.versions.values() if v.files or v.rejected]
    pending.sort(key=lambda v: (v.dataset, v.version))
    declared = set(decls.by_name())
    problems: list[Problem] = []
    notes: list[Problem] = []
    for p in found.problems:
        left_out = p.status == "ignored" and p.dataset not in declared
        (notes if left_out else problems).append(p)
    if problems:
        with db.connect() as conn:
            registry.record_problems(conn, problems)
    return IngestPlan(pending, quarantined, problems, found.deleted, notes)


def _execute(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    job_name: str,
    dataset: str,
    version: str,
    tags: dict[str, str],
    *,
    run_id: str | None = None,
    asset_selection: list[dg.AssetKey] | None = None,
) -> tuple[dg.ExecuteInProcessResult, float]:
    from dynamic_assets.defs.datasets.partitions import ensure_partition

    ensure_partition(instance, dataset, version)
    started = time.perf_counter()
    result = defs.resolve_job_def(job_name).execute_in_process(
        partition_key=version,
        instance=instance,
        raise_on_error=False,
        run_config=LOGGING,
        tags=tags,
        run_id=run_id,
        asset_selection=asset_selection,
    )
    return result, time.perf_counter() - started


HOLDER = "dynamic-assets run "  # the Postgres session name of a run: this, then its run id


def ingest_version(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    vf: VersionFolder,
    db: Database,
    decls: Declarations,
    *,
    recheck: bool = True,
) -> Ingested:
    """Run the ingest job of one version folder, holding the version's run lock
    (`db.tables.try_run_lock`) while it runs.

    The job runs in two runs: the manifest and staging (`staging_keys`), then, when they
    succeeded, curated, fingerprint and attestation (`curating_keys`), so that a version failed
    at staging is failed on its staging asset only.

    A version another run holds is left to it (`another run`, with that run's id in `note`).
    With `recheck`, a version that another run brought to curated since the plan was made is
    not run again. A failed run is alerted as the sensors alert it (`_alert`)."""
    from dynamic_assets.defs.datasets.assets import (
        curating_keys,
        ingest_job_name,
        ingest_tags,
        staging_keys,
    )

    run_id = str(uuid.uuid4())
    outcome = Ingested(vf.dataset, vf.version, files=len(vf.files))
    with db.connect(autocommit=True) as held:
        if not _take_run_lock(held, outcome, run_id):
            return outcome
        pending, quarantined = (
            outstanding(db, Discovery(versions={vf.folder: vf})) if recheck else ([vf], [])
        )
        if quarantined:  # another run has quarantined files of it since the plan was made
            outcome.status = "failed"
            outcome.failures = [(q["path"], f"quarantined: {q['error']}") for q in quarantined]
            return outcome
        if not pending:
            other = _last_curated_by(held, vf.dataset, vf.version)
            outcome.status = "another run"
            outcome.note = (
                f"another run brought {vf.dataset} {vf.version} to curated (run id {other})"
            )
            return outcome
        started = datetime.now(UTC)
        job, tags = ingest_job_name(vf.dataset), ingest_tags(vf.dataset, vf.version, TRIGGER)
        result, outcome.seconds = _execute(
            defs,
            instance,
            job,
            vf.dataset,
            vf.version,
            tags,
            run_id=run_id,
            asset_selection=staging_keys(vf.dataset),
        )
        if result.success:
            result, seconds = _execute(
                defs,
                instance,
                job,
                vf.dataset,
                vf.version,
                tags,
                asset_selection=curating_keys(vf.dataset),
            )
            outcome.seconds += seconds
    if result.success:
        outcome.status = "curated"
        outcome.rows = _curated_rows(result, vf.dataset)
    else:
        outcome.status = "failed"
        outcome.failures = _failures_of(result) or [(vf.folder, "the run failed")]
        outcome.note = _alert(defs, instance, db, decls, result, started)
    return outcome


def _alert(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    db: Database,
    decls: Declarations,
    result: dg.ExecuteInProcessResult,
    started: datetime,
) -> str:
    """Send the signed alerts of a failed run to the webhooks of `defs`, as the sensors send
    them (`defs.alerts.sensors.alert_run_failure`: `check.failed`, `run.failed`, and
    `file.quarantined` for the files quarantined since `started`). Returns one line when an
    alert could not be delivered (it stays in `webhook_deliveries` for `alerts_sensor` to
    retry), else ""."""
    from dynamic_assets.alerts.endpoints import WebhookConfigError
    from dynamic_assets.defs.alerts.resources import WebhookResource
    from dynamic_assets.defs.alerts.sensors import alert_run_failure, summarize

    webhooks = (defs.resources or {}).get("webhooks")
    if not isinstance(webhooks, WebhookResource):
        return ""
    try:
        config = webhooks.run_config()
    except WebhookConfigError as exc:
        return f"alerts not sent: {exc}"
    run = instance.get_run_by_id(result.run_id)
    if config is None or run is None:
        return ""
    failure = result.get_run_failure_event()
    _, results = alert_run_failure(
        db,
        config,
        run,
        instance,
        decls,
        failure.message if failure else None,
        quarantined_since=started,
        budget_seconds=webhooks.run_budget_seconds,
    )
    if all(r.status == "delivered" for r in results):
        return ""
    return f"alerts not all delivered ({summarize(results)}); alerts_sensor retries them"


def _take_run_lock(held, outcome: Ingested, run_id: str) -> bool:
    """Take the version's run lock for `run_id`; else note in `outcome` which run holds it."""
    taken, holder = False, None
    for _ in range(3):  # the holder may let go between the attempt and the look-up
        taken = try_run_lock(held, outcome.dataset, outcome.version, HOLDER + run_id)
        holder = None if taken else run_lock_holder(held, outcome.dataset, outcome.version)
        if taken or holder is not None:
            break
    if not taken:
        other = holder.removeprefix(HOLDER) if holder else "unknown"
        outcome.status = "another run"
        outcome.note = (
            f"another run is bringing {outcome.dataset} {outcome.version} to curated "
            f"(run id {other})"
        )
    return taken


# The states `advance_version` drives forward; the earlier ones are the ingest's
# (`pipeline.outstanding`: a version whose files have not all reached curated).
DRIVEN = ("unfingerprinted", "curated", "attested")


def plan_forward(
    db: Database,
    decls: Declarations,
    anchoring: bool,
    *,
    dataset: str | None = None,
    version: str | None = None,
    skip: set[tuple[str, str]] | frozenset = frozenset(),
) -> list[VersionState]:
    """The curated versions of declared datasets not in their final state (attested, or
    anchored with `anchoring`), but those in `skip` (run already)."""
    declared = {ds.name for ds in decls.datasets}
    with db.connect() as conn:
        left = not_final(conn, anchoring, dataset)
    return [
        s
        for s in left
        if s.state in DRIVEN
        and s.dataset in declared
        and (version is None or s.version == version)
        and (s.dataset, s.version) not in skip
    ]


def advance_version(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    db: Database,
    drive: Drive,
    decls: Declarations,
    left: VersionState,
    anchoring: bool,
) -> Ingested:
    """Bring one version an earlier run left short of its final state to it, holding its run
    lock: without fingerprint, through its ingest job (as `run --all` does); fingerprinted, through
    its attestation asset only. The outcome's status is the state reached (`failed` when not
    final, with the reason)."""
    from dynamic_assets.defs.datasets.assets import ingest_job_name, ingest_tags
    from dynamic_assets.defs.provenance.keys import attestation_key

    run_id = str(uuid.uuid4())
    outcome = Ingested(left.dataset, left.version, left=left.state)
    with db.connect(autocommit=True) as held:
        if not _take_run_lock(held, outcome, run_id):
            return outcome
        now = version_states(held, left.dataset, left.version)
        if now and now[0].final(anchoring):  # attested in one batch with another version
            outcome.status = now[0].state
            return outcome
        if not now or now[0].state not in DRIVEN:
            outcome.status = "another run"
            outcome.note = (
                f"{left.dataset} {left.version} is {now[0].state if now else 'gone'} now: "
                "left to its ingest run"
            )
            return outcome
        selection = None
        if now[0].state == "unfingerprinted":
            found = discover(drive, decls, dataset=left.dataset, version=left.version)
            vf = found.versions.get(f"{left.dataset}/{left.version}")
            if vf is None or not vf.files:
                outcome.status = "failed"
                outcome.failures = [
                    (
                        f"datasets/{left.dataset}/{left.version}",
                        "curated without a fingerprint, and its files are no longer in the "
                        "drive to curate it again",
                    )
                ]
                return outcome
            outcome.files = len(vf.files)
        else:
            selection = [attestation_key(left.dataset)]
        started = datetime.now(UTC)
        result, outcome.seconds = _execute(
            defs,
            instance,
            ingest_job_name(left.dataset),
            left.dataset,
            left.version,
            ingest_tags(left.dataset, left.version, TRIGGER),
            run_id=run_id,
            asset_selection=selection,
        )
        reached = version_states(held, left.dataset, left.version)
    if reached and reached[0].final(anchoring):
        outcome.status = reached[0].state
        outcome.rows = _curated_rows(result, left.dataset)
        return outcome
    outcome.status = "failed"
    outcome.failures = _failures_of(result) or [
        (
            f"datasets/{left.dataset}/{left.version}",
            f"still {reached[0].state}: {reached[0].detail}" if reached else "the run failed",
        )
    ]
    if not result.success:
        outcome.note = _alert(defs, instance, db, decls, result, started)
    return outcome


def train_version(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    db: Database,
    decls: Declarations,
    p: Pending,
) -> Trained:
    """Run the training job of one pending (model, version); a failed run is alerted as the
    sensors alert it (`_alert`)."""
    started = datetime.now(UTC)
    from dynamic_assets.defs.training.keys import train_job_name

    result, seconds = _execute(
        defs,
        instance,
        train_job_name(p.model.name),
        p.model.dataset,
        p.version,
        {"model": p.model.name, "version": p.version, "trigger": TRIGGER},
    )
    headline = f"test_{p.model.metric}"
    outcome = Trained(p.model.name, p.version, "failed", headline, seconds=seconds)
    if result.success:
        mats = [e.materialization for e in result.all_events if e.is_step_materialization]
        meta = mats[-1].metadata if mats else {}
        trained = meta.get("trained")
        if not mats or "skipped" in meta:
            outcome.status = "skipped"
        else:
            outcome.status = "trained" if trained and trained.value else "up to date"
        value = _number(meta.get(headline))
        outcome.value = float(value) if value is not None else None
        run = meta.get("mlflow_run_id")
        outcome.detail = f"MLflow run {run.value}" if run is not None else ""
    else:
        errors = [
            e.step_failure_data.error.message.strip()
            for e in result.all_events
            if e.is_step_failure and e.step_failure_data.error
        ]
        outcome.detail = "; ".join(errors)[:1000] or "the training run failed"
        note = _alert(defs, instance, db, decls, result, started)
        outcome.detail += f"; {note}" if note else ""
    return outcome


def train(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    db: Database,
    decls: Declarations,
    pending: list[Pending],
) -> list[Trained]:
    """Run the training job of each pending (model, version); one outcome per run."""
    return [train_version(defs, instance, db, decls, p) for p in pending]


def _failures_of(result: dg.ExecuteInProcessResult) -> list[tuple[str, str]]:
    """(path, reason) for each failure a failed step carries in its `failures` metadata (JSON:
    {path, line, row, column, reason}, see `defs.datasets.assets.located_failures`), the reason
    led by its line or row and column. Without such metadata, each blocking check that failed,
    with its description, and the message of any other failed step (a step stopped by a failed
    blocking check says no more than the check)."""
    import dagster as dg

    located_found: list[tuple[str, str]] = []
    other: list[tuple[str, str]] = []
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            meta = (data.user_failure_data.metadata if data.user_failure_data else {}) or {}
            entry = meta.get("failures")
            located = entry.value if isinstance(entry, dg.JsonMetadataValue) else None
            if isinstance(located, list) and located:
                located_found += [(str(f["path"]), _reason(f)) for f in located]
            elif not (data.error and data.error.cls_name == "DagsterAssetCheckFailedError"):
                message = data.error.message if data.error else "step failed"
                other.append((event.step_key or "run", " ".join(message.split())))
    if located_found:
        return located_found + other
    for check in result.get_asset_check_evaluations():
        if not check.passed and check.severity == dg.AssetCheckSeverity.ERROR:
            where = f"{check.asset_key.to_user_string()} check {check.check_name}"
            other.append((where, check.description or "failed"))
    return other


def _reason(failure: dict) -> str:
    """`line 3: column price: reason`, with the parts the failure names."""
    parts = [
        f"{name} {failure[name]}"
        for name in ("line", "row", "column")
        if failure.get(name) is not None
    ]
    return ": ".join([*parts, str(failure["reason"])])


def _last_curated_by(conn, dataset: str, version: str) -> str:
    """The run id of the last run that brought a version to curated (`etl_runs`)."""
    row = conn.execute(
        """SELECT run_id FROM public.etl_runs
            WHERE dataset = %s AND version = %s AND step = 'curate' AND status = 'succeeded'
            ORDER BY id DESC LIMIT 1""",
        (dataset, version),
    ).fetchone()
    return (row[0] if row else None) or "unknown"


def _curated_rows(result: dg.ExecuteInProcessResult, dataset: str) -> int:
    """The row count of the run's curated materialization."""
    from dynamic_assets.defs.datasets.assets import curated_key

    for event in result.all_events:
        mat = (
            event.step_materialization_data.materialization
            if event.is_step_materialization
            else None
        )
        if mat is not None and mat.asset_key == curated_key(dataset):
            value = _number(mat.metadata.get("dagster/row_count"))
            return int(value) if value is not None else 0
    return 0


def _number(entry: dg.MetadataValue | None) -> float | None:
    """The number a materialization's int or float metadata entry holds, else None."""
    import dagster as dg

    if isinstance(entry, dg.IntMetadataValue | dg.FloatMetadataValue):
        return entry.value
    return None
