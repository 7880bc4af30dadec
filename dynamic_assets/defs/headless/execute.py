"""The runs of `dynamic-assets run`: the ingest job of a version (`ingest_version`), a version
driven to its final state (`advance_version`), the training job of a (model, version)
(`train_version`, `train`), each on the home's Dagster instance, holding the version's run lock,
and a failed run alerted as the sensors alert it (`_alert`)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from dynamic_assets.datasets.pipeline import outstanding
from dynamic_assets.db import Database
from dynamic_assets.db.tables import run_lock_holder, try_run_lock
from dynamic_assets.declarations.model import Declarations
from dynamic_assets.defs.headless.instance import LOGGING
from dynamic_assets.defs.headless.outcomes import (
    Ingested,
    Trained,
    curated_rows,
    failures_of,
    metadata_number,
)
from dynamic_assets.defs.headless.plan import DRIVEN
from dynamic_assets.drive.base import Drive
from dynamic_assets.drive.discovery import Discovery, VersionFolder, discover
from dynamic_assets.quality.states import VersionState, version_states

if TYPE_CHECKING:
    import dagster as dg

    from dynamic_assets.training.records import Pending

TRIGGER = "cli"


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

    The version runs in two runs, as the sensors run it: its ingest job (manifest and staging),
    then, when that succeeded, its curate job (curated, fingerprint and attestation), so that a
    version failed at staging is failed on its staging asset only.

    A version another run holds is left to it (`another run`, with that run's id in `note`).
    With `recheck`, a version that another run brought to curated since the plan was made is
    not run again. A failed run is alerted as the sensors alert it (`_alert`)."""
    from dynamic_assets.defs.datasets.assets import ingest_tags

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
        result, outcome.seconds = _ingest_then_curate(
            defs,
            instance,
            vf.dataset,
            vf.version,
            ingest_tags(vf.dataset, vf.version, TRIGGER),
            run_id,
        )
    if result.success:
        outcome.status = "curated"
        outcome.rows = curated_rows(result, vf.dataset)
    else:
        outcome.status = "failed"
        outcome.failures = failures_of(result) or [(vf.folder, "the run failed")]
        outcome.note = _alert(defs, instance, db, decls, result, started)
    return outcome


def _ingest_then_curate(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    dataset: str,
    version: str,
    tags: dict[str, str],
    run_id: str,
) -> tuple[dg.ExecuteInProcessResult, float]:
    """The version's ingest job (run `run_id`), then its curate job when that run succeeded, as
    the curate sensor follows it up; the last run's result and the seconds of both."""
    from dynamic_assets.defs.datasets.assets import curate_job_name, ingest_job_name

    result, seconds = _execute(
        defs, instance, ingest_job_name(dataset), dataset, version, tags, run_id=run_id
    )
    if result.success:
        result, more = _execute(defs, instance, curate_job_name(dataset), dataset, version, tags)
        seconds += more
    return result, seconds


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
    lock: without fingerprint, through its ingest job then its curate job (as `run --all` does);
    fingerprinted, through its attestation asset only (in its curate job). The outcome's status is the state reached (`failed` when not
    final, with the reason)."""
    from dynamic_assets.defs.datasets.assets import curate_job_name, ingest_tags
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
        tags = ingest_tags(left.dataset, left.version, TRIGGER)
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
        started = datetime.now(UTC)
        if now[0].state == "unfingerprinted":
            result, outcome.seconds = _ingest_then_curate(
                defs, instance, left.dataset, left.version, tags, run_id
            )
        else:
            result, outcome.seconds = _execute(
                defs,
                instance,
                curate_job_name(left.dataset),
                left.dataset,
                left.version,
                tags,
                run_id=run_id,
                asset_selection=[attestation_key(left.dataset)],
            )
        reached = version_states(held, left.dataset, left.version)
    if reached and reached[0].final(anchoring):
        outcome.status = reached[0].state
        outcome.rows = curated_rows(result, left.dataset)
        return outcome
    outcome.status = "failed"
    outcome.failures = failures_of(result) or [
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
    from dagster import JsonMetadataValue

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
        value = metadata_number(meta.get(headline))
        outcome.value = float(value) if value is not None else None
        run = meta.get("mlflow_run_id")
        outcome.detail = f"MLflow run {run.value}" if run is not None else ""
        failed = meta.get("mirror_failures")
        if isinstance(failed, JsonMetadataValue) and isinstance(failed.value, list):
            outcome.mirror_failures = [str(f) for f in failed.value]
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


def _last_curated_by(conn, dataset: str, version: str) -> str:
    """The run id of the last run that brought a version to curated (`etl_runs`)."""
    row = conn.execute(
        """SELECT run_id FROM public.etl_runs
            WHERE dataset = %s AND version = %s AND step = 'curate' AND status = 'succeeded'
            ORDER BY id DESC LIMIT 1""",
        (dataset, version),
    ).fetchone()
    return (row[0] if row else None) or "unknown"
