"""The foundation pipeline with the drive on OneDrive: `ONEDRIVE_*` settings alone switch the
sensor, the runs and the staging load to Microsoft Graph, here a local HTTPS server that speaks
it. The sensor reads the delta feed (its cursor is the deltaLink), lists only, and runs each
changed version once; deleted files are recorded; an expired delta link resyncs without
re-running what is already curated."""

from __future__ import annotations

import json

import pytest

from dynamic_assets.declarations.model import DEMO_CONFIG
from dynamic_assets.definitions import build_defs
from dynamic_assets.demo.seed import SEED_VERSIONS
from dynamic_assets.settings import Settings
from dynamic_assets_tests.support.graph_server import CLIENT_SECRET, seed_from_folder, serve
from dynamic_assets_tests.support.onedrive import ROOT, onedrive_env, set_environment
from dynamic_assets_tests.support.runs import run_all, tick

ALL_VERSIONS = {(ds, v) for ds, versions in SEED_VERSIONS.items() for v in versions}


@pytest.fixture
def graph(tmp_path, monkeypatch, drive_root, db_url, decls):
    """The Graph server seeded with the demo drive, and the code location built from the
    environment exactly as in production (only ONEDRIVE_* and SUPABASE_DB_URL set)."""
    with serve(tmp_path, monkeypatch) as srv:
        seed_from_folder(srv, drive_root, ROOT)
        env = {
            "DYNAMIC_ASSETS_HOME": str(tmp_path / "home"),
            "DYNAMIC_ASSETS_CONFIG": str(DEMO_CONFIG),
            "SUPABASE_DB_URL": db_url,
        }
        set_environment(monkeypatch, env | onedrive_env(srv))
        yield srv, build_defs(Settings.from_env(), decls)


def requested(result) -> set[tuple[str, str]]:
    return {(r.tags["dataset"], r.partition_key) for r in result.run_requests}


def downloads(srv) -> int:
    return len(srv.requests("GET", "/download/")) + len(srv.requests("GET", "/content"))


def test_sensor_tick_to_curated_rows_through_graph(graph, instance, db):
    srv, defs = graph
    assert defs.resources["drive"].kind == "onedrive"

    first = tick(defs, instance)
    assert requested(first) == ALL_VERSIONS
    assert len({r.run_key for r in first.run_requests}) == len(ALL_VERSIONS)
    assert downloads(srv) == 0  # a tick lists only
    cursor = json.loads(first.cursor)
    assert set(cursor) == {"delta"} and "token=" in cursor["delta"]
    assert len(first.cursor) < 400
    assert CLIENT_SECRET not in first.cursor
    assert not any(token in first.cursor for token in srv.tokens)

    outcomes = run_all(defs, instance, first)
    assert all(res.success for res in outcomes.values()), {
        k: v.success for k, v in outcomes.items()
    }
    assert downloads(srv) > 0
    with db.connect() as conn:
        counts = dict(
            conn.execute(
                "SELECT dataset_version, count(*) FROM ai_curated.market GROUP BY 1"
            ).fetchall()
        )
        ingest = conn.execute(
            "SELECT status, count(*), count(quick_xor_hash), count(modified_by) FROM onedrive_ingest GROUP BY 1"
        ).fetchall()
        where = conn.execute(
            "SELECT platform_locations FROM datasets WHERE name = 'market' AND version = '2024-06-01'"
        ).fetchone()[0]
        ids = {r[0] for r in conn.execute("SELECT drive_item_id FROM onedrive_ingest").fetchall()}
    assert counts == {"2024-06-01": 560, "2024-07-01": 691}  # as from the local drive
    assert ingest == [("curated", 9, 9, 9)]
    assert where["onedrive"] == "datasets/market/2024-06-01"
    assert all(i.startswith("ITEM") for i in ids)  # Graph item ids, not local path digests

    # Second tick, same files: nothing to run; the cursor is the deltaLink Graph returned (the
    # same link, or a new one: either resumes from here).
    before = downloads(srv)
    second = tick(defs, instance, first.cursor)
    assert second.run_requests == [] and second.dynamic_partitions_requests == []
    second_link = json.loads(second.cursor)["delta"]
    assert (
        second_link.split("?", 1)[0] == cursor["delta"].split("?", 1)[0] and "token=" in second_link
    )

    # A changed file: only its version runs, and only its folder is listed.
    listed_before = len(srv.requests("GET", "/children"))
    node = srv.drive.node_at(f"{ROOT}/datasets/market/2024-06-01/nyse.csv")
    lines = node.content.split(b"\n")
    lines[1], lines[2] = lines[2], lines[1]  # same rows, other order: new bytes
    srv.drive.put(f"{ROOT}/datasets/market/2024-06-01/nyse.csv", b"\n".join(lines))
    third = tick(defs, instance, second.cursor)
    assert requested(third) == {("market", "2024-06-01")}
    assert third.run_requests[0].run_key.startswith("market|2024-06-01|")
    assert third.run_requests[0].run_key not in {r.run_key for r in first.run_requests}
    listed = srv.requests("GET", "/children")[listed_before:]
    assert [r["path"].split("?")[0].rsplit("/", 3)[-3:] for r in listed] == [
        ["market", "2024-06-01:", "children"]
    ]
    assert downloads(srv) == before
    assert all(res.success for res in run_all(defs, instance, third).values())


def test_deleted_files_and_an_expired_delta_link(graph, instance, db):
    srv, defs = graph
    first = tick(defs, instance)
    assert all(res.success for res in run_all(defs, instance, first).values())
    with db.connect() as conn:
        corpus_rows = conn.execute(
            "SELECT count(*) FROM ai_curated.corpus WHERE dataset_version = 'v1.0'"
        ).fetchone()[0]
    assert corpus_rows > 0

    # One file of a version deleted: recorded, and the version runs again without it.
    srv.drive.delete(f"{ROOT}/datasets/market/2024-07-01/nasdaq.csv")
    # Every file of a version deleted (the folder): reported, curated rows kept, no run.
    srv.drive.delete(f"{ROOT}/datasets/corpus/v1.0")
    second = tick(defs, instance, first.cursor)
    assert requested(second) == {("market", "2024-07-01")}
    with db.connect() as conn:
        deleted = dict(
            conn.execute(
                "SELECT path, error FROM onedrive_ingest WHERE status = 'deleted'"
            ).fetchall()
        )
        kept = conn.execute(
            "SELECT count(*) FROM ai_curated.corpus WHERE dataset_version = 'v1.0'"
        ).fetchone()[0]
    assert set(deleted) == {
        "datasets/market/2024-07-01/nasdaq.csv",
        "datasets/corpus/v1.0/part-0001.jsonl",
        "datasets/corpus/v1.0",  # the version, reported
    }
    assert "curated data is kept" in deleted["datasets/corpus/v1.0"]
    assert kept == corpus_rows
    assert all(res.success for res in run_all(defs, instance, second).values())
    with db.connect() as conn:
        july = conn.execute(
            "SELECT count(*) FROM ai_curated.market WHERE dataset_version = '2024-07-01'"
        ).fetchone()[0]
    assert 0 < july < 691  # only nyse.csv's rows now

    # The delta link expires while a file changes and another is deleted: 410, a full listing,
    # and only the version that changed runs; nothing unchanged is ingested again.
    srv.drive.expire_delta_tokens()
    node = srv.drive.node_at(f"{ROOT}/datasets/embeddings/v2.3/items.parquet")
    srv.drive.put(
        f"{ROOT}/datasets/embeddings/v2.3/items.parquet", node.content
    )  # new eTag, same bytes
    srv.drive.delete(f"{ROOT}/datasets/market/2024-06-01/nasdaq.csv")
    with db.connect() as conn:
        ingest_before = conn.execute("SELECT count(*) FROM onedrive_ingest").fetchone()[0]
    third = tick(defs, instance, second.cursor)
    answers = [r["status"] for r in srv.requests("GET", "/delta")]
    assert answers[-2:] == [410, 200]  # the expired link, then the listing from Location
    assert requested(third) == {("market", "2024-06-01")}  # lost nasdaq.csv during the gap
    with db.connect() as conn:
        gap = conn.execute(
            "SELECT status FROM onedrive_ingest WHERE path = 'datasets/market/2024-06-01/nasdaq.csv'"
        ).fetchone()[0]
        ingest_after = conn.execute("SELECT count(*) FROM onedrive_ingest").fetchone()[0]
    assert gap == "deleted"
    assert ingest_after == ingest_before  # the re-uploaded Parquet (same hash) is not re-ingested
    assert "full" not in json.loads(third.cursor)


def test_a_long_first_listing_continues_over_ticks(graph, instance, monkeypatch):
    srv, defs = graph
    srv.page_size = 4
    monkeypatch.setattr("dynamic_assets.defs.datasets.sensors.DELTA_BUDGET_SECONDS", 0.0)
    cursor = None
    seen: set[tuple[str, str]] = set()
    ticks = 0
    while True:
        result = tick(defs, instance, cursor)
        ticks += 1
        seen |= requested(result)
        state = json.loads(result.cursor)
        cursor = result.cursor
        if "full" not in state:
            break
        assert "token=" in state["delta"]  # a nextLink: the next tick continues from that page
        assert ticks < 20
    assert ticks > 3
    assert seen == ALL_VERSIONS
    tokens = [r["path"].split("token=")[-1] for r in srv.requests("GET", "/delta")]
    assert len(set(tokens)) == len(tokens)  # every page read once: no restart from scratch
    assert downloads(srv) == 0


def test_a_dataset_declared_after_its_files_arrived_runs_at_the_next_full_listing(
    graph, instance, db, decls
):
    """Files of a dataset nobody had declared are recorded, not taken; once it is declared, a
    full listing of the drive brings its versions to curated."""
    srv, _ = graph
    settings = Settings.from_env()
    without = decls.model_copy(
        update={"datasets": [d for d in decls.datasets if d.name != "market"], "models": []}
    )
    first = tick(build_defs(settings, without), instance)
    assert not any(ds == "market" for ds, _ in requested(first))
    assert all(
        res.success for res in run_all(build_defs(settings, without), instance, first).values()
    )
    with db.connect() as conn:
        before = conn.execute(
            "SELECT DISTINCT status FROM onedrive_ingest WHERE path LIKE 'datasets/market/%'"
        ).fetchall()
    assert before == [("undeclared",)]

    declared = tick(build_defs(settings, decls), instance)  # no cursor: a full listing
    assert requested(declared) == {("market", "2024-06-01"), ("market", "2024-07-01")}
