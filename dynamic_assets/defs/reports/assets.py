"""`reports/weekly_review`: the weekly review written into the drive every Monday at 09:00 in
`DYNAMIC_ASSETS_REVIEW_TZ`, its Markdown summary as the materialization's metadata, and a signed
`weekly_review` alert to the configured webhooks."""

from datetime import timedelta

import dagster as dg

from dynamic_assets.declarations.model import Declarations
from dynamic_assets.defs.alerts.resources import WebhookResource
from dynamic_assets.defs.resources import DriveResource, PostgresResource
from dynamic_assets.reports import announce, write_review
from dynamic_assets.reports.sensor_health import Watched
from dynamic_assets.settings import Settings

REVIEW_KEY = dg.AssetKey(["reports", "weekly_review"])
REVIEW_CRON = "0 9 * * 1"
# The sensors that list the drive, with their minimum intervals, whose ticks the review reads.
DRIVE_SENSORS = (Watched("drive_sensor", 30), Watched("model_checkpoints_sensor", 60))


def build_review_asset(decls: Declarations) -> dg.AssetsDefinition:
    @dg.asset(
        key=REVIEW_KEY,
        group_name="reports",
        kinds={"postgres", "html"},
        code_version="1",
    )
    def weekly_review(
        context: dg.AssetExecutionContext,
        postgres: PostgresResource,
        drive: DriveResource,
        webhooks: WebhookResource,
    ) -> dg.MaterializeResult:
        """The week's sync, data quality, storage, training, provenance and freshness figures
        with charts, written into the drive's reports/ folder (HTML and a Markdown summary)."""
        db = postgres.database()
        review = write_review(
            db,
            drive.get(),
            decls,
            window=timedelta(days=7),
            instance=context.instance,
            watched=DRIVE_SENSORS,
        )
        delivered = announce(db, webhooks.config(), review)
        context.log.info(f"weekly review written to {review.html_path}; alert: {delivered}")
        f = review.figures
        return dg.MaterializeResult(
            metadata={
                "summary": dg.MetadataValue.md(review.markdown),
                "report_path": dg.MetadataValue.path(review.html_path),
                "summary_path": dg.MetadataValue.path(review.markdown_path),
                "versions_curated": f.sync.versions,
                "failed_steps": f.sync.failures,
                "files_quarantined": f.sync.quarantined,
                "database_bytes": f.storage.database_bytes,
                "alert": delivered,
            }
        )

    return weekly_review


def reports_defs(decls: Declarations, settings: Settings) -> dg.Definitions:
    """The review asset, its job and the Monday 09:00 schedule in the configured time zone."""
    asset = build_review_asset(decls)
    job = dg.define_asset_job("weekly_review_job", selection=[REVIEW_KEY])
    schedule = dg.ScheduleDefinition(
        name="weekly_review_schedule",
        job=job,
        cron_schedule=REVIEW_CRON,
        execution_timezone=settings.review_tz,
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    return dg.Definitions(assets=[asset], jobs=[job], schedules=[schedule])
