"""A Parquet copy of a curated version is checked against its fingerprint from the file alone:
row count and content digest computed on the client, the same as Postgres computes them."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from dynamic_assets.copies.export import WRITER_OPTIONS
from dynamic_assets.copies.load import CopyError, check_copy
from dynamic_assets.db import Database
from dynamic_assets.lifecycle.archive import archive_version, registered
from dynamic_assets_tests.support.tiers import VERSIONS

# A server that is not there: checking a copy must not need one.
NOWHERE = Database("postgresql://nobody@127.0.0.1:9/nothing?connect_timeout=2")


def _archived(db, drive, drive_root, dataset, version):
    done = archive_version(db, drive, "archive", dataset, version)
    assert done is not None
    with db.connect() as conn:
        reg = registered(conn, dataset, version)
    return reg, (drive_root / done.path).read_bytes()


def _rewritten(data: bytes, column: str, change) -> bytes:
    table = pq.read_table(io.BytesIO(data))
    i = table.schema.get_field_index(column)
    table = table.set_column(i, column, change(table.column(i)))
    out = io.BytesIO()
    pq.write_table(table, out, **WRITER_OPTIONS)
    return out.getvalue()


@pytest.mark.parametrize(("dataset", "version"), [v for v in VERSIONS if v[1] != "2024-07-01"])
def test_a_copy_is_checked_without_a_database(curated, drive, drive_root, dataset, version):
    reg, data = _archived(curated, drive, drive_root, dataset, version)
    check = check_copy(NOWHERE, dataset, version, reg.columns, reg.record, io.BytesIO(data))
    assert check.ok
    assert (check.rows, check.digest) == (
        reg.record["rows"]["count"],
        reg.record["rows"]["content_digest"],
    )


def test_a_copy_with_one_changed_value_does_not_match(curated, drive, drive_root):
    reg, data = _archived(curated, drive, drive_root, "market", "2024-06-01")

    def bump_first(col):
        values = col.to_pylist()
        values[0] = values[0] + 1
        return pa.chunked_array([pa.array(values, col.type)])

    changed = _rewritten(data, "close", bump_first)
    check = check_copy(
        NOWHERE, "market", "2024-06-01", reg.columns, reg.record, io.BytesIO(changed)
    )
    assert not check.ok
    assert check.rows == check.want_rows and check.digest != check.want_digest


def test_json_written_otherwise_is_judged_by_postgres(curated, drive, drive_root):
    """json text that is not Postgres' normalized form (here: a leading space) holds the same values;
    Postgres normalizes it on load, so the copy matches, and without a server it cannot be
    confirmed."""
    reg, data = _archived(curated, drive, drive_root, "corpus", "v1.0")
    squeezed = _rewritten(data, "meta", lambda col: pc.binary_join_element_wise(" ", col, ""))
    assert squeezed != data
    args = ("corpus", "v1.0", reg.columns, reg.record, io.BytesIO(squeezed))
    assert check_copy(curated, *args).ok
    with pytest.raises(Exception, match="cannot connect"):
        check_copy(NOWHERE, "corpus", "v1.0", reg.columns, reg.record, io.BytesIO(squeezed))


def test_a_truncated_or_foreign_file_is_refused(curated, drive, drive_root):
    reg, data = _archived(curated, drive, drive_root, "market", "2024-06-01")
    args = ("market", "2024-06-01", reg.columns, reg.record)
    with pytest.raises(CopyError, match="not readable Parquet"):
        check_copy(NOWHERE, *args, io.BytesIO(data[: len(data) // 2]))
    as_text = _rewritten(data, "close", lambda col: col.cast(pa.string()))
    with pytest.raises(CopyError, match="close"):
        check_copy(NOWHERE, *args, io.BytesIO(as_text))
