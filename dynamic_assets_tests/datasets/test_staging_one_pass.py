"""A staged version's rows are written once and never read back by the load: the new partition
carries the check of its version from its creation, so attaching it needs no scan."""

from __future__ import annotations

from dynamic_assets.datasets.staging import load_version
from dynamic_assets.db.tables import RAW_SCHEMA, partition_name
from dynamic_assets_tests.datasets.test_staging import PEOPLE, VECS, staged, vecs_table
from dynamic_assets_tests.support.drive_files import write_file
from dynamic_assets_tests.support.staging import source_file


def scans(conn, table: str) -> tuple[int, int]:
    """Sequential scans of `table` and the rows they read, as the statistics count them."""
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute(
        "SELECT seq_scan, seq_tup_read FROM pg_stat_user_tables "
        "WHERE schemaname = %s AND relname = %s",
        (RAW_SCHEMA, table),
    ).fetchone()
    assert row is not None, table
    return row


def test_a_parquet_version_is_staged_without_reading_its_rows_back(db, tmp_path):
    path = write_file(tmp_path, "part-0.parquet", vecs_table(500))
    with db.connect(autocommit=True) as conn:
        load_version(conn, VECS, "v1", [source_file(path, VECS, file_id=5)])
        assert scans(conn, partition_name("vecs", "v1")) == (0, 0)
        assert [r[0] for r in staged(conn, VECS, "v1", ["id"])] == list(range(1, 501))


def test_a_csv_version_staged_again_is_not_read_back(db, tmp_path):
    a = write_file(tmp_path, "a.csv", "id,name,note\n1,a1,\n2,a2,\n")
    b = write_file(tmp_path, "b.csv", "id,name,note\n1,b1,\n")
    with db.connect(autocommit=True) as conn:
        load_version(conn, PEOPLE, "v1", [source_file(a, PEOPLE, file_id=1)])
        load_version(conn, PEOPLE, "v1", [source_file(b, PEOPLE, file_id=2)])
        assert scans(conn, partition_name("people", "v1")) == (0, 0)
        assert staged(conn, PEOPLE, "v1", ["_file_id", "name"]) == [(2, "b1")]
