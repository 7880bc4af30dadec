"""A version's Parquet copy holds its rows in the order of their origin, whether the partition's
rows lie in that order (read as they lie) or not (read again, sorted by the server)."""

from __future__ import annotations

import io
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from dynamic_assets.copies import export
from dynamic_assets.copies.export import GOVERNANCE, ROW_ORIGIN, export_version
from dynamic_assets.copies.load import check_copy
from dynamic_assets.db.tables import CURATED_SCHEMA, ident, partition_name
from dynamic_assets.formats.threads import ahead
from dynamic_assets.lifecycle.archive import ArchiveError, archive_version, registered
from dynamic_assets_tests.lifecycle.test_encryption import DATASET as SENSITIVE
from dynamic_assets_tests.lifecycle.test_encryption import (
    KEY,
    KEY_B64,
    _independent_decrypt,
    sensitive,  # noqa: F401
)
from dynamic_assets_tests.lifecycle.test_encryption import VERSION as SENSITIVE_VERSION
from dynamic_assets_tests.support.tiers import VERSIONS

DATASET, VERSION = "market", "2024-06-01"


def _exported(db, dataset: str = DATASET, version: str = VERSION) -> bytes:
    with db.connect() as conn:
        reg = registered(conn, dataset, version)
    with export_version(db, dataset, version, reg.columns, governance=GOVERNANCE) as out:
        data = out.file.read()
        assert out.rows == reg.record["rows"]["count"]
    return data


def _origins_as_they_lie(db) -> list[tuple[int, int]]:
    part = ident(CURATED_SCHEMA, partition_name(DATASET, VERSION))
    with db.connect() as conn:
        conn.execute("SET synchronize_seqscans = off")
        return conn.execute(
            sql.SQL("SELECT _source_file_id, _source_row FROM {}").format(part)
        ).fetchall()


def _readers() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "export-reader"]


def test_rows_that_no_longer_lie_in_order_give_the_same_file(curated):
    before = _exported(curated)
    lying = _origins_as_they_lie(curated)
    assert lying == sorted(lying)
    # An update writes the row's new version at the end of the table: the rows no longer lie in
    # the order of their origin, and their values are the same.
    part = ident(CURATED_SCHEMA, partition_name(DATASET, VERSION))
    with curated.connect() as conn:
        conn.execute(
            sql.SQL(
                "UPDATE {} SET _schema_version = _schema_version WHERE _source_row IN (1, 2)"
            ).format(part)
        )
    lying = _origins_as_they_lie(curated)
    assert lying != sorted(lying)

    after = _exported(curated)
    assert after == before
    table = pq.read_table(io.BytesIO(after), columns=["_source_file_id", "_source_row"])
    origins = list(zip(*(table.column(i).to_pylist() for i in range(2)), strict=True))
    assert origins == sorted(origins) == sorted(lying)
    assert _readers() == []


def _sorted_export(db, monkeypatch, dataset: str = DATASET, version: str = VERSION) -> bytes:
    """The export as the server sorts it (the rows read as they lie refused at once)."""

    def refuse(self, table):
        raise export._OutOfOrder

    with monkeypatch.context() as m:
        m.setattr(export._OriginOrder, "ordered", refuse)
        return _exported(db, dataset, version)


@pytest.mark.parametrize(("dataset", "version"), VERSIONS)
def test_rows_a_little_out_of_order_are_put_in_order_in_one_read(
    curated, monkeypatch, dataset, version
):
    reads = []
    real = export._write

    def counted(*args):
        reads.append(args[-1] is not None)
        return real(*args)

    monkeypatch.setattr(export, "_write", counted)
    as_they_lie = _exported(curated, dataset, version)
    # One read, as the rows lie, even where they do not lie in order (corpus v1.0: rows of
    # different lengths, some written on the page after the next row's).
    assert reads == [True]
    assert as_they_lie == _sorted_export(curated, monkeypatch, dataset, version)
    assert reads == [True, True, False]


def _batch(files: list[int], rows: list[int], type_: pa.DataType = pa.int64()) -> pa.RecordBatch:
    return pa.record_batch(
        [pa.array(files, type_), pa.array(rows, type_)], names=["_source_file_id", "_source_row"]
    )


@pytest.mark.parametrize(
    ("batches", "written"),
    [
        ([([1, 1, 2], [5, 6, 1]), ([2, 3], [2, 1])], [(1, 5), (1, 6), (2, 1), (2, 2), (3, 1)]),
        # Out of order within the window: put in order.
        ([([1, 1, 1], [2, 1, 3]), ([1, 1], [5, 4])], [(1, 1), (1, 2), (1, 3), (1, 4), (1, 5)]),
        ([([2, 1], [1, 9])], [(1, 9), (2, 1)]),
        ([([], []), ([7], [1]), ([], []), ([7], [0])], [(7, 0), (7, 1)]),
        ([([2**31 - 1, 2**31 - 1], [2**31 - 1, 0])], [(2**31 - 1, 0), (2**31 - 1, 2**31 - 1)]),
        # Later than a row group already written: refused.
        ([([1] * 6, [1, 2, 3, 4, 5, 6]), ([1], [0])], None),
        ([([1] * 5, [1, 2, 3, 4, 5]), ([1, 1], [6, 2])], None),
        # The same origin twice: no one order.
        ([([1, 1], [5, 5])], None),
        ([([1, 1], [1, 2]), ([1], [2])], None),
    ],
)
@pytest.mark.parametrize("type_", [pa.int64(), pa.int32()])
def test_rows_are_put_in_origin_order_a_window_at_a_time(monkeypatch, batches, written, type_):
    monkeypatch.setattr(export, "ROW_GROUP_ROWS", 2)
    monkeypatch.setattr(export, "_WINDOW_ROWS", 2)
    groups = export._row_groups(
        (_batch(f, r, type_) for f, r in batches), list(ROW_ORIGIN), export._OriginOrder()
    )
    if written is None:
        with pytest.raises(export._OutOfOrder):
            list(groups)
        return
    tables = list(groups)
    assert [t.num_rows for t in tables] == [2] * (len(written) // 2) + [1] * (len(written) % 2)
    table = pa.concat_tables(tables)
    assert list(zip(*(table.column(i).to_pylist() for i in range(2)), strict=True)) == written


def test_an_error_while_reading_reaches_the_writer_and_stops_the_reader():
    def broken():
        yield _batch([1], [1])
        raise OSError("the server went away")

    reader = pa.RecordBatchReader.from_batches(_batch([1], [1]).schema, broken())
    with (
        pytest.raises(OSError, match="the server went away"),
        ahead(reader, depth=1, name="export-reader") as batches,
    ):
        assert [b.num_rows for b in batches] == [1]
    assert _readers() == []


def test_a_writer_that_stops_early_stops_the_reader():
    many = (_batch([1], [i]) for i in range(1000))
    reader = pa.RecordBatchReader.from_batches(_batch([1], [1]).schema, many)
    with ahead(reader, depth=1, name="export-reader") as batches:
        next(batches)
    assert _readers() == []


def test_an_export_the_server_refuses_fails_in_one_line_and_drops_nothing(
    curated, drive, drive_root, monkeypatch
):
    part = ident(CURATED_SCHEMA, partition_name(DATASET, VERSION))
    with curated.connect() as holder, holder.transaction():
        holder.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(part))
        # libpq's sessions wait 200 ms at most for a lock: the export's read gives up.
        monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=200")
        with pytest.raises(ArchiveError) as raised:
            archive_version(curated, drive, "archive", DATASET, VERSION)
        monkeypatch.delenv("PGOPTIONS")
    message = str(raised.value)
    assert message.startswith(f"{DATASET} {VERSION} (core tier): reading its rows failed: ")
    assert "lock timeout" in message
    assert message.endswith("; nothing was archived")
    assert "\n" not in message and curated.uri not in message
    assert _readers() == []
    with curated.connect() as conn:
        assert registered(conn, DATASET, VERSION).tier == "core"
    assert not (drive_root / "archive").exists() or not any((drive_root / "archive").rglob("*"))
    assert archive_version(curated, drive, "archive", DATASET, VERSION) is not None


def test_a_sealed_export_read_again_sorted_is_one_whole_envelope(
    sensitive,  # noqa: F811
    drive,
    drive_root,
    monkeypatch,
):
    """A sensitive version's rows no longer lying in order: the first, sealed attempt is
    discarded and the archive in the drive is one envelope of the sorted file, which verifies."""
    monkeypatch.setenv("DYNAMIC_ASSETS_ARCHIVE_KEY", KEY_B64)
    part = ident(CURATED_SCHEMA, partition_name(SENSITIVE, SENSITIVE_VERSION))
    with sensitive.connect() as conn:
        conn.execute(
            sql.SQL("UPDATE {} SET _schema_version = _schema_version WHERE _source_row < 3").format(
                part
            )
        )
    reads = []
    real = export._write

    def counted(*args):
        reads.append(args[-1] is not None)
        return real(*args)

    monkeypatch.setattr(export, "_write", counted)
    # The version's 300 rows come in one batch, which the client would put in order: row
    # groups of 16 rows, and the second window refused as a row lying far out of order would
    # be, so that the first attempt has sealed a row group when it is discarded.
    monkeypatch.setattr(export, "ROW_GROUP_ROWS", 16)
    monkeypatch.setattr(export, "_WINDOW_ROWS", 16)
    windows = []
    ordered = export._OriginOrder.ordered

    def second_refused(self, table):
        windows.append(table.num_rows)
        if len(windows) == 2:
            raise export._OutOfOrder
        return ordered(self, table)

    monkeypatch.setattr(export._OriginOrder, "ordered", second_refused)
    done = archive_version(sensitive, drive, "archive", SENSITIVE, SENSITIVE_VERSION)
    assert done is not None and reads == [True, False]
    plain = _independent_decrypt((drive_root / done.path).read_bytes(), KEY)
    table = pq.read_table(io.BytesIO(plain), columns=["_source_file_id", "_source_row"])
    origins = list(zip(*(table.column(i).to_pylist() for i in range(2)), strict=True))
    assert origins == sorted(origins)
    with sensitive.connect() as conn:
        reg = registered(conn, SENSITIVE, SENSITIVE_VERSION)
    check = check_copy(
        sensitive, SENSITIVE, SENSITIVE_VERSION, reg.columns, reg.record, io.BytesIO(plain)
    )
    assert check.ok
