"""`reports/weekly_review` on its schedule: materialized with the summary as metadata, the
signed `weekly_review` alert delivered; and `dynamic-assets report` printing what it wrote."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import dagster as dg
from click.testing import CliRunner

from dynamic_assets.alerts import SIGNATURE_HEADER
from dynamic_assets.cli import main
from dynamic_assets.defs.reports.assets import REVIEW_KEY
from dynamic_assets.settings import Settings, WebhookSettings
from dynamic_assets_tests.reports.history import _curated_version, _run
from dynamic_assets_tests.support.webhook_receiver import receiver

SECRET = "weekly-review-secret"


def _week(db) -> None:
    """Two versions curated (2 and 3 files) and one failed step in the last week, one version
    a month ago."""
    now = datetime.now(UTC)
    with db.connect() as conn:
        _curated_version(conn, "market", "2024-08-01", [60, 120], now - timedelta(days=1))
        _curated_version(conn, "corpus", "v1.2", [10, 20, 30], now - timedelta(days=2))
        _curated_version(conn, "market", "2024-05-01", [5], now - timedelta(days=30))
        _run(conn, "market", "2024-08-03", "stage", "failed", now - timedelta(days=2), error="x")


def _line(md: str, label: str) -> str:
    m = re.search(rf"^- {re.escape(label)}: (.*)$", md, re.M)
    assert m, f"no line {label!r} in\n{md}"
    return m.group(1)


def test_schedule_is_monday_nine_in_the_configured_time_zone(settings, decls):
    from dynamic_assets.definitions import build_defs

    berlin = replace(settings, review_tz="Europe/Berlin")
    schedule = build_defs(berlin, decls).get_schedule_def("weekly_review_schedule")
    assert schedule.cron_schedule == "0 9 * * 1"
    assert schedule.execution_timezone == "Europe/Berlin"
    assert Settings.from_env({}).review_tz == "UTC"
    assert Settings.from_env({"DYNAMIC_ASSETS_REVIEW_TZ": "America/New_York"}).review_tz == (
        "America/New_York"
    )


def test_asset_materializes_with_summary_and_sends_a_signed_alert(
    settings, decls, db, drive_root, instance, monkeypatch
):
    from dynamic_assets.definitions import build_defs

    _week(db)
    monkeypatch.setenv("DYNAMIC_ASSETS_WEBHOOK_SECRET", SECRET)
    with receiver(SECRET) as rec:
        monkeypatch.setenv("DYNAMIC_ASSETS_WEBHOOK_URLS", rec.url)
        alerting = replace(settings, webhooks=WebhookSettings(urls_set=True, secret_set=True))
        defs = build_defs(alerting, decls)
        job = defs.get_job_def("weekly_review_job")
        result = job.execute_in_process(instance=instance)
        assert result.success
        received = rec.wait_for(1)
    record = instance.get_latest_materialization_event(REVIEW_KEY)
    assert record is not None
    meta = record.asset_materialization.metadata
    summary = meta["summary"].value
    assert isinstance(meta["summary"], dg.MarkdownMetadataValue)
    assert _line(summary, "versions curated") == "2"
    assert _line(summary, "files curated") == "5"
    assert _line(summary, "failed steps") == "1"
    # The asset reads the sensors' ticks from the instance it runs on (none ticked on this one).
    assert _line(summary, "drive_sensor") == "no tick recorded in the Dagster instance"
    path = meta["report_path"].value
    assert (drive_root / path).is_file()
    assert (drive_root / meta["summary_path"].value).read_text() == summary

    assert len(received) == 1
    req = received[0]
    # The signature checked with hmac alone: t=<unix>,v1=<hex HMAC-SHA256(secret, "t." + body)>.
    fields = dict(p.split("=", 1) for p in req.headers[SIGNATURE_HEADER].split(","))
    expected = hmac.new(
        SECRET.encode(), fields["t"].encode() + b"." + req.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(expected, fields["v1"])
    event = json.loads(req.body)
    assert event["type"] == "weekly_review"
    assert event["data"]["report_path"] == path
    assert event["data"]["versions_curated"] == 2
    assert event["data"]["failed_steps"] == 1
    with db.connect() as conn:
        status = conn.execute(
            "SELECT status FROM public.webhook_deliveries WHERE event_type = 'weekly_review'"
        ).fetchall()
    assert status == [("delivered",)]


def test_cli_report_prints_the_paths_it_wrote(settings, db, drive_root, tmp_path, monkeypatch):
    _week(db)
    monkeypatch.setenv("DYNAMIC_ASSETS_DRIVE", str(drive_root))
    monkeypatch.setenv("DYNAMIC_ASSETS_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(main, ["report", "--since", "7d"])
    assert result.exit_code == 0, result.output
    paths = result.output.split()
    assert len(paths) == 2
    assert paths[0].endswith(".html") and paths[1].endswith(".md")
    for p in paths:
        assert p.startswith("reports/dynamic-assets_report_weekly-review_")
        assert (drive_root / p).is_file()
    md = (drive_root / paths[1]).read_text()
    assert _line(md, "versions curated") == "2"
    # A longer window takes in the version curated a month ago.
    month = CliRunner().invoke(main, ["report", "--since", "5w"])
    assert month.exit_code == 0, month.output
    md = (drive_root / month.output.split()[1]).read_text()
    assert _line(md, "versions curated") == "3"
    bad = CliRunner().invoke(main, ["report", "--since", "soon"])
    assert bad.exit_code == 2
    assert "use a number and h, d or w" in bad.output


def test_cli_report_sends_the_signed_weekly_review_alert_when_webhooks_are_configured(
    settings, db, drive_root, tmp_path, monkeypatch
):
    _week(db)
    monkeypatch.setenv("DYNAMIC_ASSETS_DRIVE", str(drive_root))
    monkeypatch.setenv("DYNAMIC_ASSETS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DYNAMIC_ASSETS_WEBHOOK_SECRET", SECRET)
    with receiver(SECRET) as rec:
        monkeypatch.setenv("DYNAMIC_ASSETS_WEBHOOK_URLS", rec.url)
        result = CliRunner().invoke(main, ["report"])
        received = rec.wait_for(1)
    assert result.exit_code == 0, result.output
    html_path = result.stdout.split()[0]
    assert len(received) == 1
    req = received[0]
    fields = dict(p.split("=", 1) for p in req.headers[SIGNATURE_HEADER].split(","))
    expected = hmac.new(
        SECRET.encode(), fields["t"].encode() + b"." + req.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(expected, fields["v1"])
    event = json.loads(req.body)
    assert event["type"] == "weekly_review"
    assert event["data"]["report_path"] == html_path
    assert event["data"]["versions_curated"] == 2
    assert "delivered" in result.stderr
    with db.connect() as conn:
        status = conn.execute(
            "SELECT status FROM public.webhook_deliveries WHERE event_type = 'weekly_review'"
        ).fetchall()
    assert status == [("delivered",)]
