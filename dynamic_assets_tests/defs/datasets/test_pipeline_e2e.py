"""The foundation end to end: the drive sensor finds the demo versions, each run brings one
version from the drive to curated, and a second tick over unchanged files starts nothing."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from dynamic_assets.demo.seed import SEED_VERSIONS
from dynamic_assets_tests.support.drive_files import edit_cell, edit_line, touch_later
from dynamic_assets_tests.support.runs import run_all, tick


def test_sensor_runs_bring_every_demo_version_to_curated(defs, instance, db, drive_root):
    result = tick(defs, instance)
    expected = {(ds, v) for ds, versions in SEED_VERSIONS.items() for v in versions}
    assert {(r.tags["dataset"], r.partition_key) for r in result.run_requests} == expected
    assert len({r.run_key for r in result.run_requests}) == len(expected)
    assert {
        r.partitions_def_name: set(r.partition_keys) for r in result.dynamic_partitions_requests
    } == {f"{ds}_versions": set(v) for ds, v in SEED_VERSIONS.items()}

    outcomes = run_all(defs, instance, result)
    assert all(res.success for res in outcomes.values()), {
        k: v.success for k, v in outcomes.items()
    }

    with db.connect() as conn:
        counts = dict(
            conn.execute(
                "SELECT dataset_version, count(*) FROM ai_curated.market GROUP BY 1"
            ).fetchall()
        )
        registry = conn.execute(
            "SELECT name, version, row_count, file_count, status FROM datasets ORDER BY 1, 2"
        ).fetchall()
        ingest = conn.execute("SELECT status, count(*) FROM onedrive_ingest GROUP BY 1").fetchall()
        vec = conn.execute(
            "SELECT vector_dims(embedding), pg_typeof(embedding)::text FROM ai_curated.embeddings LIMIT 1"
        ).fetchone()
        unicode_rows = conn.execute(
            "SELECT count(*) FROM ai_curated.corpus WHERE lang IN ('ja', 'zh', 'ar', 'ru') AND body ~ '[^\\x01-\\x7F]'"
        ).fetchone()[0]
    assert counts == {"2024-06-01": 560, "2024-07-01": 691}
    assert [(n, v) for n, v, *_ in registry] == sorted(expected)
    assert all(status == "curated" for *_, status in registry)
    assert dict(ingest) == {"curated": 9}
    assert vec == (16, "vector")
    assert unicode_rows > 0

    # Materialization metadata answers a data engineer's first questions.
    mat = instance.get_latest_materialization_event(dg.AssetKey(["ai_curated", "market"]))
    meta = mat.asset_materialization.metadata
    assert meta["dagster/row_count"].value in (560, 691)
    assert "| date | symbol |" in meta["preview"].value
    sensitive = instance.get_latest_materialization_event(dg.AssetKey(["ai_curated", "embeddings"]))
    assert "No value preview" in sensitive.asset_materialization.metadata["preview"].value

    # A second tick over the same files requests nothing; a changed file re-runs its version
    # only, and its run brings the change to curated.
    again = tick(defs, instance, cursor=result.cursor)
    assert again.run_requests == []
    target = drive_root / "datasets" / "market" / "2024-06-01" / "nyse.csv"
    date, symbol, *_, close, _volume, _note = (
        target.read_text(encoding="utf-8").splitlines()[1].split(",")
    )
    corrected = f"{float(close) + 1:.2f}"
    assert market_close(db, date, symbol) == float(close)
    edit_cell(target, 1, 6, lambda _: corrected)  # a collaborator corrects one close
    touch_later(target)
    changed = tick(defs, instance, cursor=result.cursor)
    assert [(r.tags["dataset"], r.partition_key) for r in changed.run_requests] == [
        ("market", "2024-06-01")
    ]
    assert changed.dynamic_partitions_requests == []
    rerun = run_all(defs, instance, changed)
    assert [r.success for r in rerun.values()] == [True]
    assert market_close(db, date, symbol) == float(corrected)
    with db.connect() as conn:
        assert conn.execute(
            "SELECT dataset_version, count(*) FROM ai_curated.market GROUP BY 1 ORDER BY 1"
        ).fetchall() == [("2024-06-01", 560), ("2024-07-01", 691)]


def market_close(db, date: str, symbol: str) -> float:
    """The curated close of one bar of the 2024-06-01 version."""
    with db.connect() as conn:
        (close,) = conn.execute(
            "SELECT close FROM ai_curated.market WHERE dataset_version = '2024-06-01' "
            "AND date = %s AND symbol = %s",
            (date, symbol),
        ).fetchone()
    return close


def market_frame(db) -> pd.DataFrame:
    """Every curated market row (date, symbol, close, note), in key order."""
    with db.connect() as conn:
        return pd.DataFrame(
            conn.execute(
                "SELECT date, symbol, close, note FROM ai_curated.market ORDER BY 1, 2"
            ).fetchall()
        )


def test_rerunning_a_version_gives_the_same_rows(defs, instance, db):
    result = tick(defs, instance)
    market = dg.SensorResult(
        run_requests=[r for r in result.run_requests if r.tags["dataset"] == "market"][:1],
        dynamic_partitions_requests=result.dynamic_partitions_requests,
    )
    first = run_all(defs, instance, market)
    assert all(r.success for r in first.values())
    before = market_frame(db)
    second = run_all(defs, instance, dg.SensorResult(run_requests=market.run_requests))
    assert all(r.success for r in second.values())
    after = market_frame(db)
    with db.connect() as conn:
        ingest_rows = conn.execute("SELECT count(*) FROM onedrive_ingest").fetchone()[0]
        runs = conn.execute(
            "SELECT step, status, count(*) FROM etl_runs GROUP BY 1, 2 ORDER BY 1"
        ).fetchall()
    pd.testing.assert_frame_equal(before, after)
    assert ingest_rows == 2
    assert runs == [("curate", "succeeded", 2), ("stage", "succeeded", 2)]


def test_a_bad_file_fails_its_version_and_keeps_curated_rows(defs, instance, db, drive_root):
    result = tick(defs, instance)
    run_all(defs, instance, result)
    with db.connect() as conn:
        before = conn.execute(
            "SELECT count(*), sum(close) FROM ai_curated.market WHERE dataset_version = '2024-06-01'"
        ).fetchone()

    bad = drive_root / "datasets" / "market" / "2024-06-01" / "nyse.csv"
    edit_line(bad, 3, lambda line: line.rstrip("\n") + ",surplus\n")
    changed = tick(defs, instance, cursor=result.cursor)
    outcomes = run_all(defs, instance, changed)
    res = outcomes[("market", "2024-06-01")]
    assert not res.success
    failure = [e for e in res.all_events if e.is_step_failure][0]
    message = failure.step_failure_data.error.message + str(
        failure.step_failure_data.user_failure_data
    )
    assert "datasets/market/2024-06-01/nyse.csv" in message
    assert "line 4" in message and "expected 9 fields, found 10" in message

    with db.connect() as conn:
        after = conn.execute(
            "SELECT count(*), sum(close) FROM ai_curated.market WHERE dataset_version = '2024-06-01'"
        ).fetchone()
        status = conn.execute(
            "SELECT status, error FROM onedrive_ingest WHERE path = %s ORDER BY id DESC LIMIT 1",
            ("datasets/market/2024-06-01/nyse.csv",),
        ).fetchone()
    assert after == before
    assert status[0] == "quarantined" and "line 4" in status[1]
