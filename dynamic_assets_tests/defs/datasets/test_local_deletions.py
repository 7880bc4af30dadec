"""A file deleted from the local drive, seen by the drive sensor: the tick records it `deleted`
with the time and asks for its version again, and the run curates the version from the files
that remain; the file stays recorded `deleted`."""

from __future__ import annotations

from datetime import datetime

from dynamic_assets_tests.support.runs import run_all, run_version, tick

JUNE = "datasets/market/2024-06-01"


def nasdaq_row(db) -> tuple:
    with db.connect() as conn:
        return conn.execute(
            "SELECT status, deleted_at, error FROM public.onedrive_ingest WHERE path = %s",
            (f"{JUNE}/nasdaq.csv",),
        ).fetchone()


def test_the_sensor_records_a_deleted_file_and_runs_its_version_again(
    defs, instance, db, drive_root
):
    first = tick(defs, instance)
    for req in first.dynamic_partitions_requests:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    assert run_version(defs, instance, "market", "2024-06-01").success
    assert nasdaq_row(db)[0] == "curated"

    (drive_root / JUNE / "nasdaq.csv").unlink()
    second = tick(defs, instance, first.cursor)
    assert {(r.tags["dataset"], r.partition_key) for r in second.run_requests} == {
        ("market", "2024-06-01")
    }
    status, deleted_at, error = nasdaq_row(db)
    assert status == "deleted" and isinstance(deleted_at, datetime)
    assert error == "deleted from the drive"

    assert all(res.success for res in run_all(defs, instance, second).values())
    assert nasdaq_row(db)[:2] == (status, deleted_at)  # still deleted, not superseded
    with db.connect() as conn:
        sources = conn.execute(
            "SELECT DISTINCT f.path FROM ai_curated.market m "
            "JOIN public.onedrive_ingest f ON f.id = m._source_file_id "
            "WHERE m.dataset_version = '2024-06-01'"
        ).fetchall()
    assert sources == [(f"{JUNE}/nyse.csv",)]
