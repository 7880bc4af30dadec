"""Staging: files streamed into `ai_raw.<dataset>` by `load_version`, against the real Postgres."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from psycopg import sql

from dynamic_assets.datasets.staging import load_version
from dynamic_assets.db.tables import RAW_SCHEMA, table_columns
from dynamic_assets.declarations.model import Dataset
from dynamic_assets.formats.errors import LoadError
from dynamic_assets_tests.support.drive_files import write_file
from dynamic_assets_tests.support.staging import source_file, version_rows

PEOPLE = Dataset(
    name="people",
    formats=["csv"],
    columns=[{"name": "id"}, {"name": "name"}, {"name": "note"}],
)
DOCS = Dataset(
    name="docs",
    formats=["jsonl", "json"],
    columns=[{"name": "doc_id", "nullable": False}, {"name": "body"}],
)
VECS = Dataset(
    name="vecs",
    formats=["parquet"],
    columns=[
        {"name": "id", "type": "integer"},
        {"name": "score", "type": "float"},
        {"name": "ok", "type": "boolean"},
        {"name": "day", "type": "date"},
        {"name": "at", "type": "timestamp"},
        {"name": "label", "type": "string"},
        {"name": "embedding", "type": "vector(3)"},
    ],
)


def staged(conn, ds: Dataset, version: str, cols: list[str]) -> list[tuple]:
    select = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
    return version_rows(conn, RAW_SCHEMA, ds, version, select, "_file_id, _row")


def load_error(db, ds: Dataset, path: Path, version: str = "v1") -> LoadError:
    """The error loading the one file `path` as the version raises, checked to name the file."""
    with db.connect(autocommit=True) as conn, pytest.raises(LoadError) as info:
        load_version(conn, ds, version, [source_file(path, ds, version)])
    err = info.value
    assert err.path == f"datasets/{ds.name}/{version}/{path.name}"
    assert str(err).startswith(err.path + ":")
    return err


# ---------------------------------------------------------------- CSV


def test_csv_values_arrive_exactly(db, tmp_path):
    text = (
        "id,name,note\n"
        '1,"Smith, Jane","she said ""hi"""\n'
        '2,"multi\nline\nvalue",Zoë — 東京 🚀\n'
        '3,,""\n'
        "4,  padded  ,plain\n"
    )
    path = write_file(tmp_path, "people.csv", text)
    with db.connect(autocommit=True) as conn:
        (load,) = load_version(conn, PEOPLE, "v1", [source_file(path, PEOPLE, file_id=42)])
        rows = staged(conn, PEOPLE, "v1", ["_file_id", "_row", "id", "name", "note"])
    assert rows == [
        (42, 1, "1", "Smith, Jane", 'she said "hi"'),
        (42, 2, "2", "multi\nline\nvalue", "Zoë — 東京 🚀"),
        (42, 3, "3", None, ""),  # empty unquoted -> NULL, quoted "" -> ''
        (42, 4, "4", "  padded  ", "plain"),
    ]
    data = path.read_bytes()
    assert load.rows == 4
    assert load.file_id == 42
    assert load.path == "datasets/people/v1/people.csv"
    assert load.bytes == len(data)
    assert load.sha256 == hashlib.sha256(data).hexdigest()


def test_csv_columns_map_by_name_and_a_bom_is_ignored(db, tmp_path):
    by_name = PEOPLE.model_copy(update={"csv_header": "by_name"})
    path = write_file(tmp_path, "p.csv", b"\xef\xbb\xbfnote,id,name\nn1,1,Ann\nn2,2,Bob\n")
    with db.connect(autocommit=True) as conn:
        with pytest.raises(LoadError, match="line 1: the columns are not in the declared order"):
            load_version(conn, PEOPLE, "v1", [source_file(path, PEOPLE)])
        (load,) = load_version(conn, by_name, "v1", [source_file(path, by_name)])
        rows = staged(conn, by_name, "v1", ["_row", "id", "name", "note"])
    assert rows == [(1, "1", "Ann", "n1"), (2, "2", "Bob", "n2")]
    assert load.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert load.bytes == path.stat().st_size


def test_csv_row_numbers_run_per_file_across_several_files(db, tmp_path):
    a = write_file(
        tmp_path, "a.csv", "id,name,note\n" + "".join(f"{i},a{i},\n" for i in range(1, 6))
    )
    b = write_file(
        tmp_path, "b.csv", "id,name,note\n" + "".join(f"{i},b{i},\n" for i in range(1, 4))
    )
    with db.connect(autocommit=True) as conn:
        loads = load_version(
            conn,
            PEOPLE,
            "v1",
            [source_file(a, PEOPLE, file_id=1), source_file(b, PEOPLE, file_id=2)],
        )
        rows = staged(conn, PEOPLE, "v1", ["_file_id", "_row", "name"])
    assert [x.rows for x in loads] == [5, 3]
    assert rows == [(1, i, f"a{i}") for i in range(1, 6)] + [(2, i, f"b{i}") for i in range(1, 4)]


def test_csv_with_a_header_only_is_refused(db, tmp_path):
    path = write_file(tmp_path, "empty.csv", "id,name,note\n")
    with db.connect(autocommit=True) as conn, pytest.raises(LoadError) as err:
        load_version(conn, PEOPLE, "v1", [source_file(path, PEOPLE)])
    assert (
        err.value.message
        == "datasets/people/v1/empty.csv: line 2: the file has a header but no data rows"
    )


def test_csv_too_many_fields_names_the_exact_line(db, tmp_path):
    text = (
        "id,name,note\n"  # line 1
        '1,"two\nlines",x\n'  # lines 2-3
        "2,b,y\n"  # line 4
        "3,c,z,extra\n"  # line 5
        "4,d,w\n"
    )
    path = write_file(tmp_path, "bad.csv", text)
    err = load_error(db, PEOPLE, path)
    assert err.line == 5
    assert "line 5:" in str(err)
    assert "expected 3 fields, found 4" in str(err)


def test_csv_too_few_fields_names_the_line(db, tmp_path):
    path = write_file(tmp_path, "bad.csv", "id,name,note\n1,a,x\n2,b\n")
    err = load_error(db, PEOPLE, path)
    assert err.line == 3
    assert "expected 3 fields, found 2" in str(err)


def test_csv_unterminated_quote(db, tmp_path):
    path = write_file(tmp_path, "bad.csv", 'id,name,note\n1,a,x\n2,"never closed,y\n3,c,z\n')
    err = load_error(db, PEOPLE, path)
    assert err.line == 3
    assert "unterminated quote" in str(err)


def test_csv_latin1_bytes_are_refused_naming_utf8_and_the_line(db, tmp_path):
    path = write_file(tmp_path, "latin1.csv", "id,name,note\n1,Ann,x\n2,Zoë,y\n".encode("latin-1"))
    err = load_error(db, PEOPLE, path)
    assert err.line == 3
    assert "UTF-8" in str(err)
    assert "0xeb" in str(err)
    assert "line 3:" in str(err)


def test_csv_empty_file(db, tmp_path):
    path = write_file(tmp_path, "empty.csv", b"")
    err = load_error(db, PEOPLE, path)
    assert "the file is empty" in str(err)
    assert err.line == 1


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("id,name", "missing declared column(s) note"),
        ("id,name,note,age", "undeclared column(s) age"),
        ("id,nom,note", "missing declared column(s) name; undeclared column(s) nom"),
        ("id,name,name,note", "the header names column(s) twice: name"),
    ],
)
def test_csv_header_must_match_the_declaration(db, tmp_path, header, expected):
    n = header.count(",") + 1
    path = write_file(tmp_path, "h.csv", f"{header}\n" + ",".join(["x"] * n) + "\n")
    err = load_error(db, PEOPLE, path)
    assert err.line == 1
    assert expected in str(err)


def test_csv_a_nul_character_is_refused_naming_the_row(db, tmp_path):
    path = write_file(tmp_path, "nul.csv", b"id,name,note\n1,a,x\n2,b\x00c,y\n")
    err = load_error(db, PEOPLE, path)
    assert err.row == 2
    assert "row 2:" in str(err)
    assert "0x00" in str(err)


def test_csv_a_12_mb_field_loads(db, tmp_path):
    big = "x" * (12 << 20)
    path = write_file(tmp_path, "big.csv", f'id,name,note\n1,"{big}",a\n2,small,b\n')
    with db.connect(autocommit=True) as conn:
        (load,) = load_version(conn, PEOPLE, "v1", [source_file(path, PEOPLE)])
        rows = conn.execute(
            "SELECT _row, id, length(name), note FROM ai_raw.people ORDER BY _row"
        ).fetchall()
    assert load.rows == 2
    assert rows == [(1, "1", 12 << 20, "a"), (2, "2", 5, "b")]
    assert load.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_csv_a_field_larger_than_two_blocks_loads_by_retrying_with_larger_blocks(db, tmp_path):
    # Arrow reads 8 MB blocks and gives up on a value straddling more than two of them.
    big = "z" * (20 << 20)
    path = write_file(tmp_path, "huge.csv", f'id,name,note\n1,"{big}",a\n2,small,b\n')
    with db.connect(autocommit=True) as conn:
        (load,) = load_version(conn, PEOPLE, "v1", [source_file(path, PEOPLE)])
        rows = conn.execute(
            "SELECT _row, id, length(name), note FROM ai_raw.people ORDER BY _row"
        ).fetchall()
    assert load.rows == 2
    assert rows == [(1, "1", 20 << 20, "a"), (2, "2", 5, "b")]
    assert load.bytes == path.stat().st_size


def test_csv_a_huge_field_after_the_first_block_loads_once(db, tmp_path):
    # ~9 MB of ordinary rows first, so batches are already sent when the huge field is met.
    filler = "".join(f"{i},{'n' * 80},row{i}\n" for i in range(1, 100_001))
    big = "y" * (20 << 20)
    path = write_file(tmp_path, "late.csv", f'id,name,note\n{filler}100001,"{big}",last\n')
    with db.connect(autocommit=True) as conn:
        (load,) = load_version(conn, PEOPLE, "v1", [source_file(path, PEOPLE)])
        count, distinct, top = conn.execute(
            "SELECT count(*), count(DISTINCT _row), max(_row) FROM ai_raw.people"
        ).fetchone()
        last = conn.execute(
            "SELECT length(name), note FROM ai_raw.people WHERE _row = 100001"
        ).fetchone()
    assert load.rows == 100_001
    assert (count, distinct, top) == (100_001, 100_001, 100_001)
    assert last == (20 << 20, "last")


# ---------------------------------------------------------------- JSON Lines and JSON


def test_jsonl_records_land_with_their_line_numbers(db, tmp_path):
    lines = [
        '{"doc_id": "a", "body": "Zoë 東京", "n": 1.5}',
        "",
        '{"doc_id": "b", "body": null, "nested": {"k": [1, 2]}}',
        "   ",
        '{"doc_id": "c"}',
    ]
    path = write_file(tmp_path, "docs.jsonl", "\n".join(lines) + "\n")
    with db.connect(autocommit=True) as conn:
        (load,) = load_version(conn, DOCS, "v1", [source_file(path, DOCS, file_id=9)])
        rows = staged(conn, DOCS, "v1", ["_file_id", "_row", "_record"])
        types = table_columns(conn, RAW_SCHEMA, "docs")
    assert types["_record"] == "jsonb"
    assert rows == [
        (9, 1, {"doc_id": "a", "body": "Zoë 東京", "n": 1.5}),
        (9, 3, {"doc_id": "b", "body": None, "nested": {"k": [1, 2]}}),
        (9, 5, {"doc_id": "c"}),
    ]
    assert load.rows == 3
    assert load.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert load.bytes == path.stat().st_size


def test_jsonl_invalid_line_is_named(db, tmp_path):
    path = write_file(
        tmp_path, "docs.jsonl", '{"doc_id": "a"}\n\n{"doc_id": "b",\n{"doc_id": "c"}\n'
    )
    err = load_error(db, DOCS, path)
    assert err.line == 3
    assert "not valid JSON" in str(err)


def test_jsonl_a_line_that_is_an_array_is_refused(db, tmp_path):
    path = write_file(tmp_path, "docs.jsonl", '{"doc_id": "a"}\n[1, 2]\n')
    err = load_error(db, DOCS, path)
    assert err.line == 2
    assert "must be a JSON object, found list" in str(err)


def test_jsonl_starting_with_an_array_is_refused(db, tmp_path):
    path = write_file(tmp_path, "docs.jsonl", '[{"doc_id": "a"}]\n')
    err = load_error(db, DOCS, path)
    assert err.line == 1
    assert "not a JSON array of objects nor JSON Lines" in str(err)


def test_json_array_items_land_with_row_numbers(db, tmp_path):
    items = [{"doc_id": f"d{i}", "body": f"body {i}", "tags": ["x", i]} for i in range(1, 5)]
    path = write_file(tmp_path, "docs.json", json.dumps(items, indent=2, ensure_ascii=False))
    with db.connect(autocommit=True) as conn:
        (load,) = load_version(conn, DOCS, "v1", [source_file(path, DOCS, file_id=3)])
        rows = staged(conn, DOCS, "v1", ["_file_id", "_row", "_record"])
    assert rows == [(3, i, items[i - 1]) for i in range(1, 5)]
    assert load.rows == 4
    assert load.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("text", ["42", '"just a string"', "true", "null"])
def test_json_top_level_scalar_is_refused(db, tmp_path, text):
    path = write_file(tmp_path, "docs.json", text)
    err = load_error(db, DOCS, path)
    assert "not a JSON array of objects" in str(err)


def test_json_array_of_non_objects_is_refused_naming_the_item(db, tmp_path):
    path = write_file(tmp_path, "docs.json", '[{"doc_id": "a"}, 5]')
    err = load_error(db, DOCS, path)
    assert err.row == 2
    assert "array item 2 is a int" in str(err)


def test_json_empty_file_is_refused(db, tmp_path):
    path = write_file(tmp_path, "docs.json", b"")
    err = load_error(db, DOCS, path)
    assert "the file is empty" in str(err)


# ---------------------------------------------------------------- Parquet


def vecs_table(n: int = 3) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(1, n + 1), pa.int64()),
            "score": pa.array([0.5 * i for i in range(n)], pa.float64()),
            "ok": pa.array([i % 2 == 0 for i in range(n)], pa.bool_()),
            "day": pa.array([date(2024, 6, 1) + timedelta(days=i) for i in range(n)], pa.date32()),
            "at": pa.array(
                [datetime(2024, 6, 1, 12, tzinfo=UTC) + timedelta(minutes=i) for i in range(n)],
                pa.timestamp("us", tz="UTC"),
            ),
            "label": pa.array([f"label {i} ✓" for i in range(n)], pa.string()),
            "embedding": pa.array(
                [[float(i), 0.5, -1.25] for i in range(n)], pa.list_(pa.float32())
            ),
        }
    )


def test_parquet_typed_columns_land_with_their_types(db, tmp_path):
    path = write_file(tmp_path, "part-0.parquet", vecs_table(3))
    with db.connect(autocommit=True) as conn:
        (load,) = load_version(conn, VECS, "v1", [source_file(path, VECS, file_id=5)])
        types = table_columns(conn, RAW_SCHEMA, "vecs")
        rows = staged(
            conn,
            VECS,
            "v1",
            ["_file_id", "_row", "id", "score", "ok", "day", "at", "label", "embedding"],
        )
    assert types["id"] == "bigint"
    assert types["score"] == "double precision"
    assert types["ok"] == "boolean"
    assert types["day"] == "date"
    assert types["at"].startswith("timestamp")
    assert types["label"] == "text"
    assert types["embedding"] == "real[]"
    assert len(rows) == 3
    assert rows[0] == (
        5,
        1,
        1,
        0.0,
        True,
        date(2024, 6, 1),
        rows[0][6],
        "label 0 ✓",
        [0.0, 0.5, -1.25],
    )
    assert rows[2][:6] == (5, 3, 3, 1.0, True, date(2024, 6, 3))
    assert rows[2][8] == [2.0, 0.5, -1.25]
    # The instant is kept (stored as UTC wall time in staging).
    at = rows[1][6]
    assert at.replace(tzinfo=at.tzinfo or UTC) == datetime(2024, 6, 1, 12, 1, tzinfo=UTC)
    assert load.rows == 3
    assert load.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert load.bytes == path.stat().st_size


def test_parquet_other_physical_types_are_converted(db, tmp_path):
    table = pa.table(
        {
            "id": pa.array([1, 2], pa.int32()),
            "score": pa.array([1.5, None], pa.float32()),
            "ok": pa.array([True, None]),
            "day": pa.array([date(2024, 1, 1), None], pa.date32()),
            "at": pa.array(
                [datetime(2024, 6, 1, 14, 0), None], pa.timestamp("ms", tz="Europe/Berlin")
            ),
            "label": pa.array(["a", "b"]).dictionary_encode(),
            "embedding": pa.array([[1.0, 2.0, 3.0], None], pa.list_(pa.float64())),
        }
    )
    path = write_file(tmp_path, "part-1.parquet", table)
    with db.connect(autocommit=True) as conn:
        load_version(conn, VECS, "v1", [source_file(path, VECS)])
        rows = staged(conn, VECS, "v1", ["id", "score", "ok", "label", "embedding"])
        at = conn.execute("SELECT at FROM ai_raw.vecs WHERE id = 1").fetchone()[0]
    assert rows == [(1, 1.5, True, "a", [1.0, 2.0, 3.0]), (2, None, None, "b", None)]
    # 14:00 in the table is a UTC instant (Arrow timestamps are UTC) whatever the zone label.
    assert at.replace(tzinfo=at.tzinfo or UTC) == datetime(2024, 6, 1, 14, 0, tzinfo=UTC)


def test_parquet_truncated_file_is_refused(db, tmp_path):
    full = write_file(tmp_path, "full.parquet", vecs_table(50))
    data = full.read_bytes()
    path = write_file(tmp_path, "cut.parquet", data[: len(data) // 2])
    err = load_error(db, VECS, path)
    assert "not a readable Parquet file" in str(err)


def test_parquet_missing_declared_column_is_listed(db, tmp_path):
    path = write_file(
        tmp_path,
        "part.parquet",
        vecs_table(2).drop_columns(["ok", "label"]).append_column("extra", pa.array([1, 2])),
    )
    err = load_error(db, VECS, path)
    assert "missing declared column(s) ok, label" in str(err)
    assert "undeclared column(s) extra" in str(err)


def test_parquet_unconvertible_column_is_refused_naming_it(db, tmp_path):
    table = vecs_table(2).set_column(0, "id", pa.array(["one", "two"]))
    path = write_file(tmp_path, "part.parquet", table)
    err = load_error(db, VECS, path)
    assert "column id: cannot convert string" in str(err)


# ---------------------------------------------------------------- atomic replacement


def test_reloading_a_version_replaces_it_atomically(db, tmp_path):
    a = write_file(tmp_path, "a.csv", "id,name,note\n1,a1,\n2,a2,\n3,a3,\n")
    b = write_file(tmp_path, "b.csv", "id,name,note\n1,b1,\n2,b2,\n")
    bad = write_file(tmp_path, "bad.csv", "id,name,note\n1,ok,\n2,too,many,fields\n")
    other = write_file(tmp_path, "c.csv", "id,name,note\n9,c9,\n")
    with db.connect(autocommit=True) as conn:
        load_version(conn, PEOPLE, "v1", [source_file(a, PEOPLE, file_id=1)])
        assert staged(conn, PEOPLE, "v1", ["_file_id", "name"]) == [(1, "a1"), (1, "a2"), (1, "a3")]

        load_version(conn, PEOPLE, "v1", [source_file(b, PEOPLE, file_id=2)])
        assert staged(conn, PEOPLE, "v1", ["_file_id", "name"]) == [(2, "b1"), (2, "b2")]

        with pytest.raises(LoadError):
            # A good file first, then a bad one: nothing of this attempt is kept.
            load_version(
                conn,
                PEOPLE,
                "v1",
                [source_file(a, PEOPLE, file_id=3), source_file(bad, PEOPLE, file_id=4)],
            )
        assert staged(conn, PEOPLE, "v1", ["_file_id", "name"]) == [(2, "b1"), (2, "b2")]

        load_version(conn, PEOPLE, "v2", [source_file(other, PEOPLE, "v2", file_id=5)])
        assert staged(conn, PEOPLE, "v1", ["_file_id", "name"]) == [(2, "b1"), (2, "b2")]
        assert staged(conn, PEOPLE, "v2", ["_file_id", "name"]) == [(5, "c9")]

        # One partition per version, no build tables left behind.
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'ai_raw' AND c.relkind IN ('r', 'p') ORDER BY 1"
            ).fetchall()
        ]
    assert len(tables) == 3
    assert "people" in tables
    assert not any("__b_" in t for t in tables)


def test_a_failed_first_load_leaves_no_version(db, tmp_path):
    bad = write_file(tmp_path, "bad.csv", "id,name\n1,a\n")
    with db.connect(autocommit=True) as conn:
        with pytest.raises(LoadError):
            load_version(conn, PEOPLE, "v1", [source_file(bad, PEOPLE)])
        assert staged(conn, PEOPLE, "v1", ["id"]) == []
        # The connection is usable afterwards.
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_parquet_json_column_of_structs_is_staged_as_its_json_text(db, tmp_path):
    meta = Dataset(
        name="meta",
        formats=["parquet"],
        columns=[{"name": "id", "type": "integer"}, {"name": "info", "type": "json"}],
    )
    info = [{"tag": "Zürich ✓", "n": 1, "at": date(2024, 6, 1)}, None, {"tag": "", "n": None}]
    table = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "info": pa.array(
                info,
                pa.struct([("tag", pa.string()), ("n", pa.int64()), ("at", pa.date32())]),
            ),
        }
    )
    path = write_file(tmp_path, "part-0.parquet", table)
    with db.connect(autocommit=True) as conn:
        load_version(conn, meta, "v1", [source_file(path, meta)])
        rows = staged(conn, meta, "v1", ["id", "info"])
    # The text Python's json writes for each struct (dates by their str()), read back as jsonb.
    expected = [
        {"tag": "Zürich ✓", "n": 1, "at": "2024-06-01"},
        None,
        {"tag": "", "n": None, "at": None},
    ]
    assert [(i, v) for i, v in rows] == list(zip([1, 2, 3], expected, strict=True))
