"""Files deleted from OneDrive after their version was curated, through the local Graph server:
the delta feed reports them `deleted`, they are recorded `deleted` with the time, and the version
is curated again from the files that remain (new fingerprint listing those files, `verify`
passes), with `dynamic-assets run` naming each deletion. A delete that no delta tick saw is found
by `dynamic-assets run`'s own listing, under the same rules."""

from __future__ import annotations

from datetime import datetime

import pytest
from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets.declarations.model import DEMO_CONFIG
from dynamic_assets.definitions import build_defs
from dynamic_assets.settings import Settings
from dynamic_assets_tests.support.graph_server import seed_from_folder, serve
from dynamic_assets_tests.support.onedrive import ROOT, onedrive_env, set_environment
from dynamic_assets_tests.support.runs import run_all, tick


@pytest.fixture
def graph(tmp_path, monkeypatch, drive_root, db_url, decls):
    """The Graph server seeded with the demo drive, the code location built from the
    environment as in production (only ONEDRIVE_* and SUPABASE_DB_URL set)."""
    with serve(tmp_path, monkeypatch) as srv:
        seed_from_folder(srv, drive_root, ROOT)
        env = {
            "DYNAMIC_ASSETS_HOME": str(tmp_path / "home"),
            "DYNAMIC_ASSETS_CONFIG": str(DEMO_CONFIG),
            "SUPABASE_DB_URL": db_url,
        }
        set_environment(monkeypatch, env | onedrive_env(srv))
        yield srv, build_defs(Settings.from_env(), decls)


def cli(*args: str):
    return CliRunner().invoke(main, list(args), env={"DAGSTER_HOME": ""})


def version_state(db, version: str) -> dict:
    with db.connect() as conn:
        fingerprint, record = conn.execute(
            "SELECT fingerprint, fingerprint_record FROM public.datasets "
            "WHERE name = 'market' AND version = %s",
            (version,),
        ).fetchone()
        sources = {
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT f.path FROM ai_curated.market m "
                "JOIN public.onedrive_ingest f ON f.id = m._source_file_id "
                "WHERE m.dataset_version = %s",
                (version,),
            ).fetchall()
        }
        files = {
            path: (status, deleted_at)
            for path, status, deleted_at in conn.execute(
                "SELECT path, status, deleted_at FROM public.onedrive_ingest "
                "WHERE dataset = 'market' AND version = %s AND status <> 'superseded'",
                (version,),
            ).fetchall()
        }
    return {"fingerprint": fingerprint, "record": record, "sources": sources, "files": files}


def test_a_file_deleted_on_onedrive_is_recorded_and_its_version_curated_from_the_rest(
    graph, instance, db
):
    srv, defs = graph
    first = tick(defs, instance)
    assert all(res.success for res in run_all(defs, instance, first).values())
    june, july = "datasets/market/2024-06-01", "datasets/market/2024-07-01"
    before = version_state(db, "2024-06-01")
    assert before["sources"] == {f"{june}/nasdaq.csv", f"{june}/nyse.csv"}

    # Seen by the delta feed: the tick records the delete and asks for the version again; the
    # run curates it from nyse.csv alone and names the deleted file.
    srv.drive.delete(f"{ROOT}/{june}/nasdaq.csv")
    second = tick(defs, instance, first.cursor)
    assert {(r.tags["dataset"], r.partition_key) for r in second.run_requests} == {
        ("market", "2024-06-01")
    }
    status, deleted_at = version_state(db, "2024-06-01")["files"][f"{june}/nasdaq.csv"]
    assert status == "deleted" and isinstance(deleted_at, datetime)

    ran = cli("run", "--dataset", "market", "--no-train")
    assert ran.exit_code == 0, ran.output
    assert f"{june}/nasdaq.csv: deleted from the drive" in ran.output
    after = version_state(db, "2024-06-01")
    assert after["sources"] == {f"{june}/nyse.csv"}
    assert after["files"][f"{june}/nyse.csv"] == ("curated", None)
    assert after["fingerprint"] and after["fingerprint"] != before["fingerprint"]
    assert [f["path"] for f in after["record"]["files"]] == [f"{june}/nyse.csv"]
    verified = cli("verify", "market", "2024-06-01")
    assert verified.exit_code == 0, verified.output

    # Not seen by a tick: `run` lists the drive, finds the file gone, and does the same.
    july_before = version_state(db, "2024-07-01")
    srv.drive.delete(f"{ROOT}/{july}/nasdaq.csv")
    ran = cli("run", "--dataset", "market", "--no-train")
    assert ran.exit_code == 0, ran.output
    assert f"{july}/nasdaq.csv: deleted from the drive" in ran.output
    july_after = version_state(db, "2024-07-01")
    assert july_after["sources"] == {f"{july}/nyse.csv"}
    status, deleted_at = july_after["files"][f"{july}/nasdaq.csv"]
    assert status == "deleted" and isinstance(deleted_at, datetime)
    assert july_after["fingerprint"] not in (None, july_before["fingerprint"])
    assert cli("verify", "market", "2024-07-01").exit_code == 0
