"""One weekly review: figures computed, charts drawn, the HTML page and Markdown summary written
into the drive's `reports/` folder under the project's naming convention
(`dynamic-assets_report_weekly-review_<YYYY-MM-DD>_<HHMMSS>Z.<ext>`), and the `weekly_review`
alert that announces it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dynamic_assets.alerts.delivery import dispatch
from dynamic_assets.alerts.endpoints import WebhookConfig
from dynamic_assets.alerts.events import Event
from dynamic_assets.db import Database
from dynamic_assets.declarations.model import Declarations
from dynamic_assets.drive.base import Drive
from dynamic_assets.drive.sync_events import record_quota
from dynamic_assets.reports import render
from dynamic_assets.reports.figures import Figures, weekly_figures
from dynamic_assets.reports.sensor_health import SensorsHealth, Watched, sensors_health

REPORTS_FOLDER = "reports"
PROJECT = "dynamic-assets"
KIND = "report"
NAME = "weekly-review"


def report_name(at: datetime, ext: str, suffix: str = "") -> str:
    """`dynamic-assets_report_weekly-review_<date>_<UTC time>Z[-N].<ext>` (project, kind, name,
    date; `-N` for a further review written within the same second)."""
    at = at.astimezone(UTC)
    return f"{PROJECT}_{KIND}_{NAME}_{at:%Y-%m-%d}_{at:%H%M%S}Z{suffix}.{ext}"


@dataclass(frozen=True)
class Review:
    """What one review wrote: its figures, charts, summary and the drive paths."""

    figures: Figures
    charts: dict[str, bytes]
    markdown: str
    html_path: str
    markdown_path: str


def write_review(
    db: Database,
    drive: Drive,
    decls: Declarations,
    *,
    window: timedelta = timedelta(days=7),
    now: datetime | None = None,
    instance: Any | None = None,
    watched: Sequence[Watched] = (),
    no_instance: str = "no Dagster instance was given",
) -> Review:
    """Record the drive's quota (OneDrive), compute the figures of the `window` before `now`
    (the `watched` sensors' ticks from the Dagster `instance`; without one, `no_instance` says
    why they were not seen), draw the charts, and write the HTML page and the Markdown summary
    into the drive's `reports/` folder."""
    record_quota(db, drive)  # read before the window closes, so this review shows it
    now = (now or datetime.now(UTC)).astimezone(UTC)
    with db.connect() as conn:
        figures = weekly_figures(conn, decls, since=now - window, until=now)
    figures.health.sensors = (
        sensors_health(instance, watched, now - window, now)
        if instance is not None
        else SensorsHealth(unseen=no_instance)
    )
    from dynamic_assets.reports import charts as charts_  # matplotlib loads with a review only

    charts = charts_.draw_all(figures)
    page = render.html(figures, charts).encode("utf-8")
    # A second review within the same second (another window, say) is written beside the first
    # under the next free `-N`, never over it.
    for n in range(1, 100):
        suffix = "" if n == 1 else f"-{n}"
        html_path = f"{REPORTS_FOLDER}/{report_name(now, 'html', suffix)}"
        md_path = f"{REPORTS_FOLDER}/{report_name(now, 'md', suffix)}"
        try:
            drive.write_bytes(html_path, page)
        except FileExistsError:
            continue
        summary = render.markdown(figures, html_path)
        drive.write_bytes(md_path, summary.encode("utf-8"), overwrite=True)
        return Review(figures, charts, summary, html_path, md_path)
    raise FileExistsError(f"{REPORTS_FOLDER}: 99 reviews already written at {now:%H:%M:%S}Z")


def review_event(review: Review) -> Event:
    """The `weekly_review` alert: the headline figures and where the report is."""
    f = review.figures
    checks = sum(c.runs for c in f.quality.checks)
    passed = sum(c.passed for c in f.quality.checks)
    late = [x.dataset for x in f.freshness if x.late]
    return Event(
        "weekly_review",
        key=review.html_path,
        summary=(
            f"weekly review {f.since:%Y-%m-%d} to {f.until:%Y-%m-%d}: "
            f"{f.sync.versions} version(s) curated, {f.sync.failures} failed step(s), "
            f"{f.sync.quarantined} file(s) quarantined, {passed}/{checks} checks passed"
        ),
        data={
            "report_path": review.html_path,
            "summary_path": review.markdown_path,
            "since": f.since.isoformat(),
            "until": f.until.isoformat(),
            "versions_curated": f.sync.versions,
            "files_curated": f.sync.files,
            "bytes_staged": f.sync.bytes_staged,
            "failed_steps": f.sync.failures,
            "files_quarantined": f.sync.quarantined,
            "latency_p50_s": f.sync.latency_p50_s,
            "latency_p95_s": f.sync.latency_p95_s,
            "checks": checks,
            "checks_passed": passed,
            "rows_rejected": f.quality.rows_rejected,
            "schema_drift_events": len(f.quality.drift),
            "database_bytes": f.storage.database_bytes,
            "attested": f.provenance.attested,
            "attest_backlog": f.provenance.attest_backlog,
            "late_datasets": late,
        },
        occurred_at=f.until,
    )


def announce(
    db: Database, config: WebhookConfig | None, review: Review, *, budget_seconds: float = 30.0
) -> str:
    """Send the signed `weekly_review` alert to the configured webhooks; one line saying what
    became of it per endpoint (`webhooks not configured` without any)."""
    if config is None:
        return "webhooks not configured"
    results = dispatch(db, config, [review_event(review)], budget_seconds=budget_seconds)
    return ", ".join(f"{r.endpoint}: {r.status}" for r in results) or "none due"
