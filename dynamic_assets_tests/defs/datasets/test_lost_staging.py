"""Staging tables are UNLOGGED: crash recovery empties them while `onedrive_ingest` still records
each file as staged with its rows. Curating such a version alone (a re-execution from failure, a
materialization of the curated asset only) must fail, naming what to stage again, and leave the
curated rows as they were."""

from __future__ import annotations

import json

import dagster as dg
from click.testing import CliRunner
from psycopg import sql

from dynamic_assets.cli import main
from dynamic_assets.db.tables import RAW_SCHEMA, ident, partition_name
from dynamic_assets.declarations.model import DEMO_CONFIG
from dynamic_assets.defs.datasets.assets import curated_key, raw_key
from dynamic_assets_tests.support.runs import run_version

VERSION = "2024-06-01"
LOST = (
    "staging of market 2024-06-01 holds 0 of 560 rows recorded for its files "
    "(the staging tables do not survive a database crash): "
    "materialize ai_raw/market for 2024-06-01 again"
)


def _empty_staging(db) -> None:
    """What crash recovery does to an UNLOGGED table: its rows are gone."""
    with db.connect() as conn:
        conn.execute(
            sql.SQL("TRUNCATE {}").format(ident(RAW_SCHEMA, partition_name("market", VERSION)))
        )


def _curated(db) -> list[tuple]:
    with db.connect() as conn:
        if conn.execute("SELECT to_regclass('ai_curated.market')").fetchone()[0] is None:
            return []
        return conn.execute(
            "SELECT date, symbol, close, _source_file_id, _source_row FROM ai_curated.market "
            "WHERE dataset_version = %s ORDER BY _source_file_id, _source_row",
            (VERSION,),
        ).fetchall()


def _failure(result: dg.ExecuteInProcessResult) -> str:
    failed = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert len(failed) == 1
    return failed[0].step_failure_data.error.message


def _status(tmp_path, db_url) -> dict:
    env = {
        "DYNAMIC_ASSETS_CONFIG": str(DEMO_CONFIG),
        "SUPABASE_DB_URL": db_url,
        "DYNAMIC_ASSETS_HOME": str(tmp_path / "h"),
    }
    out = CliRunner().invoke(main, ["status", "--json"], env=env)
    return {d["dataset"]: d for d in json.loads(out.output)}["market"]


def _assert_refused(result, db, tmp_path, db_url, before: list[tuple]) -> None:
    assert not result.success
    message = _failure(result)
    assert LOST in message
    for name in ("nyse.csv", "nasdaq.csv"):
        assert f"datasets/market/{VERSION}/{name}" in message
    assert _curated(db) == before
    market = _status(tmp_path, db_url)
    assert market["last_failure"]["version"] == VERSION
    assert market["last_failure"]["step"] == "curate"
    assert LOST in market["last_failure"]["error"]
    with db.connect() as conn:
        statuses = conn.execute(
            "SELECT DISTINCT status FROM onedrive_ingest WHERE dataset = 'market' AND version = %s",
            (VERSION,),
        ).fetchall()
    assert statuses == [("staged",)]


def test_curating_an_emptied_staging_fails_and_curates_nothing(
    defs, instance, db, db_url, tmp_path
):
    staged = run_version(defs, instance, "market", VERSION, selection=[raw_key("market")])
    assert staged.success
    _empty_staging(db)
    result = run_version(defs, instance, "market", VERSION, selection=[curated_key("market")])
    _assert_refused(result, db, tmp_path, db_url, before=[])


def test_curating_an_emptied_staging_keeps_the_curated_version(
    defs, instance, db, db_url, tmp_path
):
    assert run_version(defs, instance, "market", VERSION).success
    before = _curated(db)
    assert len(before) == 560
    assert run_version(defs, instance, "market", VERSION, selection=[raw_key("market")]).success
    _empty_staging(db)
    result = run_version(defs, instance, "market", VERSION, selection=[curated_key("market")])
    _assert_refused(result, db, tmp_path, db_url, before=before)
    with db.connect() as conn:
        registered = conn.execute(
            "SELECT row_count FROM datasets WHERE name = 'market' AND version = %s", (VERSION,)
        ).fetchone()
    assert registered == (560,)
