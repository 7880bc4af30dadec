"""Sync health in the weekly review, from what the Graph client recorded as it happened: requests
throttled by the Graph test server (429 and 503 with Retry-After), the seconds waited, and delta
resyncs after `410 Gone`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from dynamic_assets.declarations.model import DEMO_CONFIG
from dynamic_assets.definitions import build_defs
from dynamic_assets.drive import LocalDrive
from dynamic_assets.drive.graph.http import SyncEvent
from dynamic_assets.drive.sync_events import database_recorder, store_event
from dynamic_assets.reports import write_review
from dynamic_assets.settings import Settings
from dynamic_assets_tests.support.graph_server import DRIVE_ID, seed_from_folder, serve
from dynamic_assets_tests.support.onedrive import ROOT, graph_drive, onedrive_env, set_environment
from dynamic_assets_tests.support.runs import tick


@pytest.fixture
def server(tmp_path, monkeypatch):
    with serve(tmp_path, monkeypatch) as srv:
        yield srv


def _line(md: str, label: str) -> str:
    m = re.search(rf"^- {re.escape(label)}: (.*)$", md, re.M)
    assert m, f"no line {label!r} in\n{md}"
    return m.group(1)


def test_throttling_and_resyncs_recorded_by_the_graph_client_are_reported(
    server, db, decls, tmp_path
):
    drive = graph_drive(server)
    drive.recorder = database_recorder(db, drive.label)
    server.drive.put(f"{ROOT}/datasets/market/2024-06-01/a.csv", b"x\n1\n")
    server.fault("GET", "/delta", status=429, headers={"Retry-After": "2"})
    server.fault("GET", "/delta", status=503, headers={"Retry-After": "3"})
    link = drive.delta(None).link
    server.fault("GET", "/children", status=429, headers={"Retry-After": "1.5"})
    assert [i.path for i in drive.list_tree("datasets/market")] == [
        "datasets/market/2024-06-01",
        "datasets/market/2024-06-01/a.csv",
    ]
    server.drive.expire_delta_tokens()
    assert drive.delta(link).resync
    # A resync and a throttled request of an earlier week do not count in this one.
    week_ago = datetime.now(UTC) - timedelta(days=8)
    store_event(db, drive.label, SyncEvent("resync_410", {"status": 410}, at=week_ago))
    store_event(db, drive.label, SyncEvent("throttled", {"status": 429}, 9.0, at=week_ago))

    reports = tmp_path / "reports-drive"
    reports.mkdir()
    md = write_review(db, LocalDrive(reports), decls).markdown
    assert _line(md, "Graph requests throttled (429/503, retried)") == "3"
    assert _line(md, "seconds waited for Graph") == "6.5 s"
    assert _line(md, "delta resyncs after 410") == "1"


def test_a_failing_recorder_never_fails_the_request(server):
    drive = graph_drive(server)

    def broken(event: SyncEvent) -> None:
        raise RuntimeError("the table is gone")

    drive.recorder = broken
    server.drive.put(f"{ROOT}/datasets/market/2024-06-01/a.csv", b"x\n1\n")
    server.fault("GET", "/children", status=429, headers={"Retry-After": "1"})
    assert len(list(drive.list_tree("datasets/market"))) == 2


def test_the_drive_sensor_records_throttling_and_resyncs_of_the_code_locations_drive(
    tmp_path, monkeypatch, drive_root, db_url, db, decls, instance
):
    with serve(tmp_path, monkeypatch) as srv:
        seed_from_folder(srv, drive_root, ROOT)
        env = {
            "DYNAMIC_ASSETS_HOME": str(tmp_path / "home"),
            "DYNAMIC_ASSETS_CONFIG": str(DEMO_CONFIG),
            "SUPABASE_DB_URL": db_url,
        }
        set_environment(monkeypatch, env | onedrive_env(srv))
        defs = build_defs(Settings.from_env(), decls)
        srv.fault("GET", "/delta", status=429, headers={"Retry-After": "0.25"})
        first = tick(defs, instance)
        srv.drive.expire_delta_tokens()
        tick(defs, instance, first.cursor)
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT kind, drive, detail, seconds FROM public.sync_events ORDER BY id"
        ).fetchall()
    assert rows == [
        ("throttled", f"drive {DRIVE_ID}", {"status": 429, "code": "activityLimitReached"}, 0.25),
        (
            "resync_410",
            f"drive {DRIVE_ID}",
            {"status": 410, "code": "resyncChangesApplyDifferences"},
            None,
        ),
    ]


def test_the_drives_quota_is_recorded_when_a_review_is_written_and_shown_in_its_sync_section(
    server, db, decls
):
    drive = graph_drive(server)
    drive.recorder = database_recorder(db, drive.label)
    gib = 1024**3
    server.drive.quota.update(
        total=1024 * gib, used=922 * gib, remaining=102 * gib, deleted=3 * gib, state="nearing"
    )
    review = write_review(db, drive, decls)
    assert _line(review.markdown, "drive quota") == (
        "922.0 GiB used of 1.0 TiB (90.0%), 102.0 GiB remaining, state nearing"
    )
    assert review.html_path.startswith("reports/")
    assert server.drive.node_at(f"{ROOT}/{review.html_path}") is not None
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT kind, drive, detail FROM public.sync_events WHERE kind = 'quota'"
        ).fetchall()
    assert rows == [
        (
            "quota",
            f"drive {DRIVE_ID}",
            {
                "total": 1024 * gib,
                "used": 922 * gib,
                "remaining": 102 * gib,
                "deleted": 3 * gib,
                "state": "nearing",
            },
        )
    ]


def test_a_local_drive_has_no_quota_to_report(db, decls, tmp_path):
    md = write_review(db, LocalDrive(tmp_path), decls).markdown
    assert _line(md, "drive quota") == "not recorded (OneDrive only)"
