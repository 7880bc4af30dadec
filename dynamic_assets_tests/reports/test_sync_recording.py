"""Graph throttling recorded in `public.sync_events` wherever the drive is used, not only by the
drive sensor: a run worker's ingest steps (the code location's drive resource) and
`dynamic-assets run`, each against the Graph test server answering 429/503 with Retry-After."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets.declarations.model import DEMO_CONFIG
from dynamic_assets.definitions import build_defs
from dynamic_assets.settings import Settings
from dynamic_assets_tests.support.graph_server import DRIVE_ID, seed_from_folder, serve
from dynamic_assets_tests.support.onedrive import ROOT, onedrive_env, set_environment
from dynamic_assets_tests.support.runs import run_version


@pytest.fixture
def graph_env(tmp_path, monkeypatch, drive_root, db_url):
    """The Graph server seeded with the demo drive and the environment that points the code
    location at it (only ONEDRIVE_* and SUPABASE_DB_URL set)."""
    with serve(tmp_path, monkeypatch) as srv:
        seed_from_folder(srv, drive_root, ROOT)
        env = {
            "DYNAMIC_ASSETS_HOME": str(tmp_path / "home"),
            "DYNAMIC_ASSETS_CONFIG": str(DEMO_CONFIG),
            "SUPABASE_DB_URL": db_url,
        }
        env |= onedrive_env(srv)
        set_environment(monkeypatch, env)
        yield srv, env


def _events(db) -> list[tuple]:
    with db.connect() as conn:
        return conn.execute(
            "SELECT kind, drive, detail, seconds FROM public.sync_events ORDER BY id"
        ).fetchall()


def test_a_run_worker_records_the_graph_throttling_of_its_downloads(graph_env, db, decls, instance):
    srv, _ = graph_env
    defs = build_defs(Settings.from_env(), decls)
    srv.fault("GET", "/download/", status=429, headers={"Retry-After": "0.25"})
    result = run_version(defs, instance, "market", "2024-06-01")
    assert result.success
    assert _events(db) == [
        ("throttled", f"drive {DRIVE_ID}", {"status": 429, "code": "activityLimitReached"}, 0.25)
    ]


def test_dynamic_assets_run_records_the_graph_throttling_of_its_listing_and_downloads(
    graph_env, db
):
    srv, env = graph_env
    srv.fault("GET", "/children", status=503, headers={"Retry-After": "0.5"})
    srv.fault("GET", "/download/", status=429, headers={"Retry-After": "0.25"})
    result = CliRunner().invoke(main, ["run", "--no-train"], env=env | {"DAGSTER_HOME": ""})
    assert result.exit_code == 0, result.output
    assert sorted(_events(db), key=lambda e: e[2]["status"]) == [
        ("throttled", f"drive {DRIVE_ID}", {"status": 429, "code": "activityLimitReached"}, 0.25),
        ("throttled", f"drive {DRIVE_ID}", {"status": 503, "code": "serviceNotAvailable"}, 0.5),
    ]
