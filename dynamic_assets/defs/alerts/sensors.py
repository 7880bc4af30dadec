"""The alert sensors: they turn what happened into signed webhook events and deliver them.

`alert_on_run_failure`  a run failed: `run.failed`, and `check.failed` for each blocking check
                        that failed in it (a failed blocking check is what stops a version short
                        of curated)
`alerts_sensor`         every 30 s: `file.quarantined` (new quarantined rows of
                        `onedrive_ingest`), `attestation.confirmed` (new or newly anchored
                        proofs), `dataset.stale` (freshness, every 10 min), and the retries of
                        earlier deliveries that failed

Delivery happens here, in the sensors, never in the asset steps: a slow or dead endpoint costs a
sensor tick at most its time budget and never fails or delays a run. Events go through
`webhook_deliveries` (once per event and endpoint), so nothing is sent twice and nothing that
failed is forgotten. The cursor holds only timestamps.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import dagster as dg

from dynamic_assets.alerts.delivery import DeliveryResult, dispatch
from dynamic_assets.alerts.endpoints import WebhookConfig
from dynamic_assets.alerts.events import (
    Event,
    attestation_events,
    detail,
    quarantined_events,
    since_default,
    stale_events,
)
from dynamic_assets.db import Database
from dynamic_assets.declarations.model import Declarations
from dynamic_assets.defs.alerts.resources import WebhookResource, build_webhook_resource
from dynamic_assets.defs.resources import PostgresResource
from dynamic_assets.settings import Settings

# Rows committed out of order (a transaction that started earlier commits later) are caught by
# looking back this far; deliveries are unique per event and endpoint, so nothing repeats.
OVERLAP = timedelta(minutes=2)
STALE_EVERY = timedelta(minutes=10)
NOT_CONFIGURED = (
    "webhooks are not configured: set DYNAMIC_ASSETS_WEBHOOK_URLS and DYNAMIC_ASSETS_WEBHOOK_SECRET"
)


def _sensitive(decls: Declarations) -> set[str]:
    return {d.name for d in decls.datasets if d.sensitivity == "sensitive"}


def summarize(results: list[DeliveryResult]) -> str:
    """One line for the log: counts per outcome and the endpoints (redacted)."""
    if not results:
        return "nothing to deliver"
    counts = Counter(r.status for r in results)
    endpoints = sorted({r.endpoint for r in results})
    errors = sorted(
        {f"{r.endpoint}: {r.error}" for r in results if r.error and r.status != "deferred"}
    )
    text = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + f" ({', '.join(endpoints)})"
    return text + (f"; last errors: {'; '.join(errors[:3])}" if errors else "")


def run_failure_events(
    run: dg.DagsterRun,
    instance: dg.DagsterInstance,
    decls: Declarations,
    message: str | None = None,
) -> list[Event]:
    """`check.failed` for each failed blocking check of the run, and `run.failed`."""
    sensitive = _sensitive(decls)
    tags = run.tags or {}
    dataset = tags.get("dataset")
    version = tags.get("dagster/partition") or tags.get("version")
    hidden = dataset in sensitive
    events: list[Event] = []
    checks = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    for record in checks:
        ev = record.dagster_event.event_specific_data if record.dagster_event else None
        if not isinstance(ev, dg.AssetCheckEvaluation) or ev.passed or not ev.blocking:
            continue
        if ev.severity != dg.AssetCheckSeverity.ERROR:
            continue
        asset = "/".join(ev.asset_key.path)
        ds = dataset or ev.asset_key.path[-1]
        counts = {
            k: v.value
            for k, v in (ev.metadata or {}).items()
            if k in ("unexpected_count", "rows_rejected", "problems", "unexpected_percent")
            and isinstance(v.value, int | float)
        }
        events.append(
            Event(
                "check.failed",
                key=f"{run.run_id}\x00{asset}\x00{ev.check_name}\x00{ev.partition or version}",
                summary=f"{ds} {ev.partition or version}: blocking check {ev.check_name} on {asset} failed",
                dataset=ds,
                version=ev.partition or version,
                data={
                    "asset": asset,
                    "check": ev.check_name,
                    "severity": "ERROR",
                    "run_id": run.run_id,
                    "description": detail(ev.description, ds in sensitive),
                    **counts,
                },
            )
        )
    failures = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    steps: list[dict[str, str | None]] = []
    failed_steps: list[str] = []
    for record in failures:
        de = record.dagster_event
        if de is None or de.step_key is None:  # a step failure always names its step
            continue
        failed_steps.append(de.step_key)
        err = de.step_failure_data.error if de.step_failure_data else None
        steps.append(
            {
                "step": de.step_key,
                "error": detail(err.message.strip() if err else None, hidden),
            }
        )
    what = f"{dataset} {version}: " if dataset and version else ""
    events.append(
        Event(
            "run.failed",
            key=run.run_id,
            summary=f"{what}run {run.run_id[:8]} of {run.job_name} failed"
            + (f" at {', '.join(failed_steps)}" if failed_steps else ""),
            dataset=dataset,
            version=version,
            data={
                "run_id": run.run_id,
                "job": run.job_name,
                "trigger": tags.get("trigger")
                or ("sensor" if tags.get("dagster/sensor_name") else None),
                "failed_steps": steps,
                "message": detail(message, hidden),
            },
        )
    )
    return events


def alert_run_failure(
    db: Database,
    config: WebhookConfig,
    run: dg.DagsterRun,
    instance: dg.DagsterInstance,
    decls: Declarations,
    message: str | None = None,
    *,
    quarantined_since: datetime | None = None,
    budget_seconds: float = 30.0,
) -> tuple[list[Event], list[DeliveryResult]]:
    """Deliver the events of a failed run (`run_failure_events`), and with `quarantined_since`
    the `file.quarantined` of every file quarantined since then (what `alerts_sensor` would
    find next), through `webhook_deliveries`: an event already delivered for the run is not sent
    again, whichever process found it first."""
    events = run_failure_events(run, instance, decls, message)
    if quarantined_since is not None:
        with db.connect() as conn:
            quarantined, _ = quarantined_events(
                conn, quarantined_since - OVERLAP, _sensitive(decls)
            )
        events += quarantined
    return events, dispatch(db, config, events, budget_seconds=budget_seconds)


def build_run_failure_sensor(decls: Declarations) -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name="alert_on_run_failure",
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description="Sends `run.failed`, and `check.failed` for each blocking check that failed, "
        "to the webhook endpoints (signed; retried by alerts_sensor).",
    )
    def alert_on_run_failure(
        context: dg.RunFailureSensorContext, postgres: PostgresResource, webhooks: WebhookResource
    ) -> None:
        config = webhooks.config()
        if config is None:
            return
        events, results = alert_run_failure(
            postgres.database(),
            config,
            context.dagster_run,
            context.instance,
            decls,
            context.failure_event.message,
            budget_seconds=webhooks.budget_seconds,
        )
        context.log.info(f"{len(events)} event(s): {summarize(results)}")

    return alert_on_run_failure


def _decode(cursor: str | None) -> dict:
    try:
        state = json.loads(cursor) if cursor else {}
    except ValueError:
        state = {}
    return state if isinstance(state, dict) else {}


def _at(state: dict, key: str, default: datetime) -> datetime:
    try:
        return datetime.fromisoformat(state[key])
    except (KeyError, TypeError, ValueError):
        return default


def build_alerts_sensor(decls: Declarations) -> dg.SensorDefinition:
    sensitive = _sensitive(decls)
    watched = any(d.freshness for d in decls.datasets)

    @dg.sensor(
        name="alerts_sensor",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Sends `file.quarantined`, `attestation.confirmed` and `dataset.stale` to the "
        "webhook endpoints (signed), and retries deliveries that failed, with backoff.",
    )
    def alerts_sensor(
        context: dg.SensorEvaluationContext, postgres: PostgresResource, webhooks: WebhookResource
    ) -> dg.SkipReason:
        config = webhooks.config()
        if config is None:
            return dg.SkipReason(NOT_CONFIGURED)
        state = _decode(context.cursor)
        start = since_default()
        q_since = _at(state, "quarantined", start)
        a_since = _at(state, "attested", start)
        now = datetime.now(UTC)
        db = postgres.database()
        with db.connect() as conn:
            quarantined, q_new = quarantined_events(conn, q_since - OVERLAP, sensitive)
            attested, a_new = attestation_events(conn, a_since - OVERLAP)
        events = quarantined + attested
        stale_checked = _at(state, "stale_checked", datetime.min.replace(tzinfo=UTC))
        if watched and now - stale_checked >= STALE_EVERY:
            from dynamic_assets.quality.status import health

            events += stale_events(health(db, decls, now=now))
            stale_checked = now
        results = dispatch(db, config, events, budget_seconds=webhooks.budget_seconds)
        context.update_cursor(
            json.dumps(
                {
                    "quarantined": max(q_new, q_since).isoformat(),
                    "attested": max(a_new, a_since).isoformat(),
                    "stale_checked": stale_checked.isoformat(),
                },
                sort_keys=True,
            )
        )
        text = f"{len(events)} event(s) found; deliveries: {summarize(results)}"
        if results:
            context.log.info(text)
        return dg.SkipReason(text)

    return alerts_sensor


def alerts_defs(decls: Declarations, settings: Settings | None = None) -> dg.Definitions:
    """The alert sensors and the webhook resource (endpoints and secret as EnvVars)."""
    settings = settings or Settings.from_env()
    return dg.Definitions(
        sensors=[build_run_failure_sensor(decls), build_alerts_sensor(decls)],
        resources={"webhooks": build_webhook_resource(settings)},
    )
