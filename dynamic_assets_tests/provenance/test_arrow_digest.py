"""The content digest computed from a Parquet copy's Arrow batches agrees with the fixed vectors
of docs/fingerprint-vectors.json and with `content_digest` computed by Postgres on hostile values."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from itertools import pairwise
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from dynamic_assets.copies import load
from dynamic_assets.copies.export import ROW_ORIGIN, export_version
from dynamic_assets.copies.load import CopyError, digest_copy
from dynamic_assets.declarations.model import Column
from dynamic_assets.provenance.arrow_digest import (
    ArrowDigest,
    arrow_digest,
    canonical_text,
    sorted_groups,
)
from dynamic_assets.provenance.fingerprint import content_digest
from dynamic_assets.read.frames import typed_table

DOCS = Path(__file__).resolve().parents[2] / "docs"
VECTORS = json.loads((DOCS / "fingerprint-vectors.json").read_text(encoding="utf-8"))
PGTYPE = {
    "string": "text",
    "integer": "bigint",
    "float": "double precision",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamptz",
    "json": "jsonb",
}


def _pg_type(type_: str) -> str:
    return PGTYPE.get(type_, type_)


def _table(db, name: str, columns: list[dict], versions: dict[str, list[list]]) -> None:
    """`ai_curated.<name>` partitioned by version, the columns from Postgres text input."""
    with db.connect() as conn, conn.transaction():
        conn.execute(
            sql.SQL(
                "CREATE TABLE ai_curated.{} (dataset_version text NOT NULL, {}, "
                "_source_file_id bigint NOT NULL, _source_row bigint NOT NULL) "
                "PARTITION BY LIST (dataset_version)"
            ).format(
                sql.Identifier(name),
                sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(c["name"]), sql.SQL(_pg_type(c["type"])))
                    for c in columns
                ),
            )
        )
        for version, rows in versions.items():
            conn.execute(
                sql.SQL(
                    "CREATE TABLE ai_curated.{} PARTITION OF ai_curated.{} FOR VALUES IN ({})"
                ).format(sql.Identifier(f"{name}__{version}"), sql.Identifier(name), version)
            )
            for n, row in enumerate(rows):
                conn.execute(
                    sql.SQL("INSERT INTO ai_curated.{} VALUES (%s, {}, 1, %s)").format(
                        sql.Identifier(name),
                        sql.SQL(", ").join(
                            sql.SQL("%s::{}").format(sql.SQL(_pg_type(c["type"]))) for c in columns
                        ),
                    ),
                    (version, *row, n),
                )


def _exported(db, name: str, version: str, columns: list[dict]):
    """The version's rows as the Parquet copy the archive writes, read back as Arrow batches."""
    cols = [Column.model_construct(**c) for c in columns]
    with export_version(db, name, version, cols, governance=ROW_ORIGIN) as exported:
        return pq.read_table(exported.file).to_batches()


def _both(db, name: str, version: str, columns: list[dict]) -> tuple[tuple, tuple]:
    with db.connect() as conn:
        pg = content_digest(conn, name, version, columns)
    return (pg.rows, pg.digest), arrow_digest(_exported(db, name, version, columns), columns)


def test_the_values_of_the_fixed_vectors_give_their_canonical_text(db):
    values = VECTORS["values"]
    for n, v in enumerate(values):
        columns = [{"name": "x", "type": v["type"], "nullable": True}]
        _table(db, f"v{n}", columns, {"a": [[v["input"]]]})
        (batch,) = _exported(db, f"v{n}", "a", columns)
        assert canonical_text(batch.column("x"), v["type"]).to_pylist() == [v["canonical"]], v


def test_the_rows_of_the_fixed_vectors_give_their_digest(db):
    rows = VECTORS["rows"]
    _table(db, "vrows", rows["columns"], {"a": [r["input"] for r in rows["rows"]]})
    batches = _exported(db, "vrows", "a", rows["columns"])
    assert arrow_digest(batches, rows["columns"]) == (rows["count"], rows["content_digest"])


HOSTILE_COLUMNS = [
    {"name": "s", "type": "string", "nullable": True},
    {"name": "i", "type": "integer", "nullable": True},
    {"name": "f", "type": "float", "nullable": True},
    {"name": "b", "type": "boolean", "nullable": True},
    {"name": "d", "type": "date", "nullable": True},
    {"name": "t", "type": "timestamp", "nullable": True},
    {"name": "j", "type": "json", "nullable": True},
    {"name": "v", "type": "vector(3)", "nullable": True},
]
HOSTILE = [
    ["", 0, "-0", "false", "10000-01-01", "1969-12-31 23:59:59.999999+00", "{}", "[0,-0,1e-45]"],
    [None, None, None, None, None, None, None, "[-0.0,0,-1]"],
    ["Zürich \"q\"\n東京 😀", -9223372036854775808, "NaN", "true", "0044-03-15 BC",
     "0044-03-15 10:00:00 BC", '{"b": 1, "a": [1e2, 1.50, -0], "aa": "\\u0001é"}', "[1,2,3]"],
    ["\r\n\t", 9223372036854775807, "Infinity", None, "infinity", "infinity", '"text"', "[1,1,1]"],
    ["N", 1, "-Infinity", "true", "-infinity", "-infinity", "null", "[-1e38,1e38,0.1]"],
    ["V3:abc", -1, "1e-320", "false", "0001-01-01", "12345-06-07 08:09:10.5+02", "[]", "[3,2,1]"],
    ["line1\nline2", 42, "1.7976931348623157e308", "true", "1999-12-31",
     "2024-02-29 23:59:59.999999-12", '[1.0E+2, "x", null, true]', "[0.5,-1,1e-7]"],
    ["", 42, "5e-324", "true", "4713-01-01 BC", "1900-03-01 00:00:00+00", '{"": ""}', "[0,0,0]"],
]  # fmt: skip


# Years 1 to 9999 only (dates AD, timestamps of either era), no infinity: fixed-width text.
ORDINARY = [
    ["a", 1, "0.1", "true", "1000-01-01", "0044-03-15 10:00:00 BC", "{}", "[1,2,3]"],
    [None, None, None, None, None, None, None, "[0,0,0]"],
    ["b", 2, "-2.5", "false", "9999-12-31", "9999-12-31 23:59:59.999999+00", "1", "[1,1,1]"],
    ["c", 3, "1e300", None, "1969-12-31", "1969-12-31 23:59:59.000001+00", "[]", "[3,2,1]"],
    ["d", 4, "0", "true", "0001-01-01", "0001-01-01 00:00:00+00", "null", "[0,1,0]"],
    ["e", 5, "-0", "true", "2024-02-29", "2024-02-29 12:34:56.5-07", '"x"', "[0,0,1]"],
]  # fmt: skip


def test_the_digest_of_hostile_values_agrees_with_postgres(db):
    versions = {"a": HOSTILE, "b": HOSTILE[:1] + HOSTILE[:1], "c": ORDINARY}
    _table(db, "hostile", HOSTILE_COLUMNS, versions)
    for version in versions:
        pg, arrow = _both(db, "hostile", version, HOSTILE_COLUMNS)
        assert arrow == pg, version
    assert _both(db, "hostile", "a", HOSTILE_COLUMNS)[1][0] == len(HOSTILE)


def test_a_single_changed_value_changes_the_digest(db):
    changed = [list(r) for r in HOSTILE]
    changed[0][0] = " "  # one space for the empty string
    nulls = [list(r) for r in HOSTILE]
    nulls[0][0] = None  # NULL for the empty string
    _table(db, "changed", HOSTILE_COLUMNS, {"a": HOSTILE, "b": changed, "c": nulls})
    digests = {v: arrow_digest(_exported(db, "changed", v, HOSTILE_COLUMNS), HOSTILE_COLUMNS)
               for v in ("a", "b", "c")}  # fmt: skip
    assert len({d for _, d in digests.values()}) == 3
    with db.connect() as conn:
        for v, got in digests.items():
            want = content_digest(conn, "changed", v, HOSTILE_COLUMNS)
            assert got == (want.rows, want.digest)


def test_no_rows_give_the_digest_of_nothing():
    assert arrow_digest([], HOSTILE_COLUMNS) == (
        0,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    )


def test_a_null_vector_is_exported_read_back_and_digested(db):
    """pyarrow writes a fixed-size list holding a NULL to Parquet but cannot read it back: the
    copy carries vectors as float32 lists, their length in the field's `declared_type`."""
    rows = [list(r) for r in HOSTILE]
    rows[1][7] = None
    _table(db, "nullvec", HOSTILE_COLUMNS, {"a": rows})
    cols = [Column.model_construct(**c) for c in HOSTILE_COLUMNS]
    with export_version(db, "nullvec", "a", cols, governance=ROW_ORIGIN) as exported:
        table = pq.read_table(exported.file)  # an independent reader of the file
    field = table.schema.field("v")
    assert field.metadata[b"declared_type"] == b"vector(3)"
    ordered = table.sort_by("_source_row").column("v").to_pylist()
    assert ordered[1] is None
    assert ordered[0] == pa.array([0.0, -0.0, 1e-45], pa.float32()).to_pylist()
    typed = typed_table(table.select(["v"]), [cols[-1]])
    assert typed.schema.field("v").type == pa.list_(pa.float32(), 3)
    pg, arrow = _both(db, "nullvec", "a", HOSTILE_COLUMNS)
    assert arrow == pg


# An archiving process: exports the version and digests its copy, then says what it loaded.
_ARCHIVING = """
import json, sys
import dynamic_assets.lifecycle.archive
from dynamic_assets.copies.export import ROW_ORIGIN, export_version
from dynamic_assets.copies.load import digest_copy
from dynamic_assets.db import Database
from dynamic_assets.declarations.model import Column
uri, name, version, columns = json.loads(sys.argv[1])
cols = [Column.model_construct(**c) for c in columns]
with export_version(Database(uri), name, version, cols, governance=ROW_ORIGIN) as exported:
    record = {"schema": {"columns": columns}}
    got = digest_copy(cols, record, exported.file, governance=ROW_ORIGIN)
    import pyarrow as pa
    from dynamic_assets.formats.memory import map_large_blocks
    pool = pa.default_memory_pool().backend_name
    print(json.dumps([got.rows, got.hexdigest(), "pandas" in sys.modules, pool, map_large_blocks()]))
"""


def test_an_archiving_process_digests_hostile_values_without_loading_pandas(db):
    """Exporting and digesting a copy takes no pandas (about 40 MB of the process's peak memory
    when archiving), its digest is still Postgres', and the process allocates so that freed
    memory goes back to the system (Arrow's jemalloc pool; glibc mapping large blocks on their
    own)."""
    rows = [list(r) for r in HOSTILE + ORDINARY]
    rows[1][7] = None
    _table(db, "nopandas", HOSTILE_COLUMNS, {"a": rows})
    with db.connect() as conn:
        want = content_digest(conn, "nopandas", "a", HOSTILE_COLUMNS)
    argument = json.dumps([db.uri, "nopandas", "a", HOSTILE_COLUMNS])
    done = subprocess.run(
        [sys.executable, "-c", _ARCHIVING, argument], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    rows_got, digest, pandas_loaded, pool, mapped = json.loads(done.stdout)
    assert (rows_got, digest) == (want.rows, want.digest)
    assert not pandas_loaded
    assert pool == "jemalloc"
    assert mapped is True


def _in_groups(hashes: np.ndarray) -> list[tuple[int, list[bytes]]]:
    return [
        (byte, [bytes(h) for h in group.view(np.uint8).reshape(-1, 32)])
        for byte, group in sorted_groups(hashes)
    ]


def _sorted_by_python(raw: np.ndarray) -> list[tuple[int, list[bytes]]]:
    ordered = sorted(bytes(r) for r in raw)
    return [(b, [h for h in ordered if h[0] == b]) for b in sorted({h[0] for h in ordered})]


def test_row_hashes_are_ordered_byte_by_byte_also_where_their_first_bytes_agree():
    """The row hashes are ordered by an integer sort of their first 8 bytes; hashes that share
    those (and equal ones) are still in the order of a byte-wise sort, grouped by first byte."""
    rng = np.random.default_rng(7)
    raw = rng.integers(0, 256, size=(2000, 32), dtype=np.uint8)
    raw[100:140, :8] = raw[0, :8]  # 41 hashes with one 8-byte head, differing after it
    raw[140:150, :31] = raw[1, :31]  # differing in the last byte only
    raw[150:160] = raw[2]  # equal hashes
    raw[160:170, 8:] = 0  # zeros after a random head
    raw[170:180, 0] = 0  # one first byte shared by several
    assert _in_groups(raw.reshape(-1).view("S32")) == _sorted_by_python(raw)
    # Equal hashes only (no two different ones with one head): the integer order as it is.
    equal = raw[[*range(180, 2000), 2, 2, 3]]
    assert _in_groups(equal.reshape(-1).view("S32")) == _sorted_by_python(equal)
    assert _in_groups(raw[:0].reshape(-1).view("S32")) == []


# Many rows from Postgres' own functions: NULLs in most columns, days and timestamps close
# together (written from tables of their span) and far apart, years BC.
MANY_COLUMNS = [
    {"name": "s", "type": "string", "nullable": True},
    {"name": "i", "type": "integer", "nullable": True},
    {"name": "f", "type": "float", "nullable": True},
    {"name": "b", "type": "boolean", "nullable": True},
    {"name": "d", "type": "date", "nullable": True},
    {"name": "t", "type": "timestamp", "nullable": False},
    {"name": "tb", "type": "timestamp", "nullable": True},
    {"name": "d2", "type": "date", "nullable": False},
    {"name": "j", "type": "json", "nullable": True},
    {"name": "v", "type": "vector(3)", "nullable": True},
]
MANY_VALUES = [
    "CASE WHEN mod(g, 7) = 0 THEN NULL ELSE 'row ' || repeat('é', mod(g, 5)) || g END",
    "CASE WHEN mod(g, 11) = 0 THEN NULL ELSE g * 7919 - 500000 END",
    "CASE WHEN mod(g, 13) = 0 THEN NULL ELSE g / 7.0 - 300 END",
    "CASE WHEN mod(g, 17) = 0 THEN NULL ELSE mod(g, 3) = 0 END",
    "CASE WHEN mod(g, 19) = 0 THEN NULL ELSE date '2023-12-01' + mod(g, 400) END",
    "timestamptz '2024-01-01 00:00:00+00' + g * interval '17 minutes 0.000003 seconds'",
    "CASE WHEN mod(g, 23) = 0 THEN NULL WHEN mod(g, 29) = 0 THEN timestamptz '9999-12-31 23:59:59+00'"
    " ELSE timestamptz '0044-03-15 10:00:00+00 BC' + g * interval '1 day 1 second' END",
    "CASE WHEN mod(g, 31) = 0 THEN date '0001-01-01' ELSE date '2020-02-28' + mod(g, 3) END",
    "CASE WHEN mod(g, 37) = 0 THEN NULL ELSE jsonb_build_object('g', g, 'h', g / 3.0) END",
    "CASE WHEN mod(g, 41) = 0 THEN NULL ELSE ('[' || g || ',-0,' || g / 8.0 || ']')::vector END",
]


def _many(db, name: str, rows: int) -> list[Column]:
    _table(db, name, MANY_COLUMNS, {"a": []})
    with db.connect() as conn, conn.transaction():
        conn.execute(
            sql.SQL(
                "INSERT INTO ai_curated.{} SELECT 'a', {}, 1, g FROM generate_series(1, %s) g"
            ).format(sql.Identifier(name), sql.SQL(", ").join(map(sql.SQL, MANY_VALUES))),
            (rows,),
        )
    return [Column.model_construct(**c) for c in MANY_COLUMNS]


def _digest_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "arrow-digest-row-texts"]


def test_a_copy_in_batches_of_uneven_sizes_over_two_threads_gives_postgres_digest(db, monkeypatch):
    cols = _many(db, "many", 5000)
    with db.connect() as conn:
        want = content_digest(conn, "many", "a", MANY_COLUMNS)
    record = {"schema": {"columns": MANY_COLUMNS}}
    monkeypatch.setattr(load, "CHECK_BATCH_ROWS", 777)
    with export_version(db, "many", "a", cols, governance=ROW_ORIGIN) as exported:
        got = digest_copy(cols, record, exported.file, governance=ROW_ORIGIN)
        exported.file.seek(0)
        table = pq.read_table(exported.file)
    assert (got.rows, got.hexdigest()) == (want.rows, want.digest) == (5000, want.digest)
    sizes = [1, 0, 999, 2, 2500, 0, 1498]
    cuts = np.cumsum([0, *sizes])
    whole = table.combine_chunks().to_batches()[0]
    uneven = [whole.slice(a, b - a) for a, b in pairwise(cuts)]
    assert [b.num_rows for b in uneven] == sizes
    piped = ArrowDigest(MANY_COLUMNS).add_all(uneven)
    one_by_one = ArrowDigest(MANY_COLUMNS)
    for b in uneven:
        one_by_one.add(b)
    assert (piped.rows, piped.hexdigest()) == (want.rows, want.digest)
    assert (one_by_one.rows, one_by_one.hexdigest()) == (want.rows, want.digest)
    assert _digest_threads() == []


def test_an_error_reading_or_building_rows_is_the_copy_error_and_leaves_no_thread(
    db, tmp_path, monkeypatch
):
    cols = _many(db, "broken", 3000)
    with export_version(db, "broken", "a", cols, governance=ROW_ORIGIN) as exported:
        table = pq.read_table(exported.file)
    # Declared a date, the copy holds text: found while building the first batch's texts.
    declared = [dict(c, type="date") if c["name"] == "s" else c for c in MANY_COLUMNS]
    copy = tmp_path / "copy.parquet"
    pq.write_table(table, copy, row_group_size=500)
    with copy.open("rb") as f, pytest.raises(CopyError) as caught:
        digest_copy(cols, {"schema": {"columns": declared}}, f, governance=ROW_ORIGIN)
    assert str(caught.value) == (
        "does not hold the version's columns as declared: column s: a date column of Arrow type "
        "string"
    )
    assert _digest_threads() == []
    # A page of the fifth row group overwritten: read after four batches have been hashed.
    meta = pq.ParquetFile(copy).metadata
    at = meta.row_group(4).column(1).data_page_offset
    data = bytearray(copy.read_bytes())
    data[at : at + 64] = b"\xff" * 64
    copy.write_bytes(bytes(data))
    with copy.open("rb") as f, pytest.raises(OSError) as direct:  # the error read in this thread
        for _ in pq.ParquetFile(f, pre_buffer=False).iter_batches(batch_size=500):
            pass
    monkeypatch.setattr(load, "CHECK_BATCH_ROWS", 500)
    with copy.open("rb") as f, pytest.raises(CopyError) as caught:
        digest_copy(cols, {"schema": {"columns": MANY_COLUMNS}}, f, governance=ROW_ORIGIN)
    assert str(caught.value) == f"cannot be read whole: {direct.value}"
    assert _digest_threads() == []


def test_an_error_in_the_batches_is_raised_where_they_are_digested():
    batch = pa.record_batch({"x": pa.array([1, 2, 3], pa.int64())})
    columns = [{"name": "x", "type": "integer", "nullable": False}]

    def failing():
        yield batch
        yield batch
        raise OSError("the third batch is lost")

    with pytest.raises(OSError, match="the third batch is lost"):
        ArrowDigest(columns).add_all(failing())
    assert _digest_threads() == []
