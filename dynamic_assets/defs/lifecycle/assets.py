"""`lifecycle/pass`: one lifecycle pass every day at 03:00 UTC, and whenever the sensor sees the
core database cross its `warn_at` (or `critical_at`) share of the budget. Its metadata is the
`dynamic-assets tiers` report (usage, % of budget, status, versions per tier, the main tier's
size, each version's tier) and what it moved; crossing a threshold sends a signed
`storage.warn` / `storage.critical` alert. Versions deleted by policy are recorded in the signed
ledger; a deleted version's dynamic partition is removed once no tier holds a copy of it
(`remove_deleted_partitions`). Each version the pass moved, encrypted or deleted gets an
observation of its `ai_curated/<dataset>` partition with its tier (`observations`)."""

from datetime import UTC, datetime
from typing import Any

import dagster as dg

from dynamic_assets.alerts.delivery import dispatch
from dynamic_assets.alerts.events import storage_event
from dynamic_assets.db import Database
from dynamic_assets.declarations.model import Declarations
from dynamic_assets.defs.alerts.resources import WebhookResource
from dynamic_assets.defs.datasets.partitions import partitions_name
from dynamic_assets.defs.lifecycle.observations import tier_observation
from dynamic_assets.defs.provenance.resources import AttestationResource
from dynamic_assets.defs.resources import DriveResource, PostgresResource
from dynamic_assets.lifecycle.deletion import held_by_no_tier
from dynamic_assets.lifecycle.main_tier import MainTierError, main_database, main_usage
from dynamic_assets.lifecycle.plan import Plan
from dynamic_assets.lifecycle.run import current_plan, run_pass

LIFECYCLE_KEY = dg.AssetKey(["lifecycle", "pass"])
LIFECYCLE_CRON = "0 3 * * *"
TIERS = ("core", "main", "archive")
RANK = {"healthy": 0, "monitor": 1, "critical": 2}
MB = 1024 * 1024


def tiers_metadata(plan: Plan) -> dict[str, Any]:
    """The figures of `dynamic-assets tiers` for a plan: core usage against its budget, status,
    the versions in each tier, and what the next pass would move."""
    usage = plan.usage
    figures: dict[str, Any] = {
        "status": usage.status,
        "usage_mb": round(usage.database_bytes / MB, 1),
        "budget_mb": usage.budget_bytes / MB,
        "percent_of_budget": round(100 * usage.fraction, 1),
    }
    for tier in TIERS:
        figures[f"versions_{tier}"] = len(usage.in_tier(tier))
    figures["version_tiers"] = dg.MetadataValue.md(
        "| dataset | version | tier |\n|---|---|---|\n"
        + "\n".join(f"| {v.dataset} | {v.version} | {v.tier} |" for v in usage.versions)
    )
    figures["next_pass"] = dg.MetadataValue.md(
        "\n".join(
            f"- {m.dataset} {m.version} {m.source} -> {m.target}: {m.reason}" for m in plan.moves
        )
        or "nothing to move"
    )
    return figures


def remove_deleted_partitions(instance: dg.DagsterInstance, db: Database) -> list[str]:
    """Remove the dynamic partition of every version deleted by policy that no tier holds a
    copy of any more (a deletion still under way keeps its partition); returns them."""
    removed = []
    for dataset, version in held_by_no_tier(db):
        name = partitions_name(dataset)
        if instance.has_dynamic_partition(name, version):
            instance.delete_dynamic_partition(name, version)
            removed.append(f"{dataset} {version}")
    return removed


def main_metadata(db: Database, decls: Declarations) -> dict[str, Any]:
    """The main tier's size and database (host, port, name) when one is declared; why not when
    it cannot be reached."""
    if decls.storage.main is None:
        return {}
    try:
        main = main_database(decls.storage.main)
        assert main is not None
        found = main_usage(db, main)
    except MainTierError as exc:
        return {"main_tier": str(exc)}
    return {
        "main_tier": found.database,
        "main_usage_mb": round(found.database_bytes / MB, 1),
        "main_curated_mb": round(sum(found.partitions.values()) / MB, 1),
    }


def build_lifecycle_asset(decls: Declarations) -> dg.AssetsDefinition:
    @dg.asset(key=LIFECYCLE_KEY, group_name="lifecycle", kinds={"postgres"}, code_version="1")
    def lifecycle_pass(
        context: dg.AssetExecutionContext,
        postgres: PostgresResource,
        drive: DriveResource,
        webhooks: WebhookResource,
        attestation: AttestationResource,
    ) -> dg.MaterializeResult:
        """One lifecycle pass: the versions the storage plan moves out of core archived to the
        drive, each verified against its fingerprint before its partition is dropped."""
        db = postgres.database()
        before = current_plan(db, decls).usage.status
        last = context.instance.get_latest_materialization_event(LIFECYCLE_KEY)
        was = "healthy"
        if last is not None and last.asset_materialization is not None:
            seen = last.asset_materialization.metadata.get("status")
            was = str(seen.value) if seen is not None else "healthy"
        done = run_pass(db, drive.get(), decls, key=attestation.signer())
        sources = {(m.dataset, m.version): (m.source, m.target) for m in done.plan.moves}
        moved = [
            f"{a.dataset} {a.version} {' -> '.join(sources.get((a.dataset, a.version), ('?', '?')))}"
            f" ({a.rows} rows)"
            for a in done.moved
        ]
        deleted = [
            f"{d.dataset} {d.version} deleted by {d.policy} ({d.reason}) from "
            f"{', '.join(d.tiers) or 'no tier'}"
            for d in (done.deletions.deleted if done.deletions else [])
        ]
        for found in done.placements:
            context.log_event(tier_observation(found))
        unpartitioned = remove_deleted_partitions(context.instance, db)
        for failure in done.failed:
            context.log.error(f"not moved: {failure}")
        for problem in done.problems:
            context.log.error(f"problem: {problem}")
        after = current_plan(db, decls)
        alert = "no threshold crossed"
        if RANK.get(before, 0) > RANK.get(was, 0):
            usage = after.usage
            event = storage_event(
                before,
                key=context.run_id,
                database_bytes=usage.database_bytes,
                budget_bytes=usage.budget_bytes,
                versions={t: len(usage.in_tier(t)) for t in TIERS},
                moved=moved,
            )
            config = webhooks.config()
            if event is not None and config is not None:
                results = dispatch(db, config, [event], budget_seconds=webhooks.budget_seconds)
                alert = ", ".join(f"{r.endpoint}: {r.status}" for r in results) or "none due"
            elif event is not None:
                alert = f"{event.type}: webhooks not configured"
        context.log.info(f"core {was} -> {before}; moved {len(moved)}; alert: {alert}")
        return dg.MaterializeResult(
            metadata={
                **tiers_metadata(after),
                **main_metadata(db, decls),
                "status_before_pass": before,
                "moved": len(moved),
                "moves": dg.MetadataValue.md("\n".join(f"- {m}" for m in moved) or "nothing"),
                "not_moved": dg.MetadataValue.md(
                    "\n".join(f"- {f}" for f in done.failed) or "none"
                ),
                "problems": dg.MetadataValue.md(
                    "\n".join(f"- {p}" for p in done.problems) or "none"
                ),
                "encrypted": dg.MetadataValue.md(
                    "\n".join(f"- {r.dataset} {r.version}: {r.path}" for r in done.resealed)
                    or "none"
                ),
                "alert": alert,
                "deleted": len(deleted),
                "deletions": dg.MetadataValue.md("\n".join(f"- {d}" for d in deleted) or "none"),
                "partitions_removed": dg.MetadataValue.md(
                    "\n".join(f"- {p}" for p in unpartitioned) or "none"
                ),
            }
        )

    return lifecycle_pass


def build_lifecycle_sensor(decls: Declarations) -> dg.SensorDefinition:
    @dg.sensor(
        name="lifecycle_sensor",
        asset_selection=[LIFECYCLE_KEY],
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Requests a lifecycle pass when the core database crosses its warn_at (or "
        "critical_at) share of the budget; the cursor holds the status last seen.",
    )
    def lifecycle_sensor(
        context: dg.SensorEvaluationContext, postgres: PostgresResource
    ) -> dg.RunRequest | dg.SkipReason:
        status = current_plan(postgres.database(), decls).usage.status
        was = context.cursor or "healthy"
        context.update_cursor(status)
        if RANK.get(status, 0) > RANK.get(was, 0):
            return dg.RunRequest(
                asset_selection=[LIFECYCLE_KEY],
                run_key=f"core-{status}-{datetime.now(UTC).isoformat()}",
                tags={"dynamic_assets/core_status": status},
            )
        return dg.SkipReason(f"core is {status} (was {was})")

    return lifecycle_sensor


def lifecycle_defs(decls: Declarations) -> dg.Definitions:
    """The lifecycle asset, its job, the daily schedule and the threshold sensor."""
    job = dg.define_asset_job("lifecycle_job", selection=[LIFECYCLE_KEY])
    schedule = dg.ScheduleDefinition(
        name="lifecycle_schedule",
        job=job,
        cron_schedule=LIFECYCLE_CRON,
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    return dg.Definitions(
        assets=[build_lifecycle_asset(decls)],
        jobs=[job],
        schedules=[schedule],
        sensors=[build_lifecycle_sensor(decls)],
    )
