"""Promotion: staged rows become typed rows of `ai_curated.<dataset>`, or a precise error."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest
from psycopg import sql

from dynamic_assets.datasets.checks import key_bytes_limit, staging_problems
from dynamic_assets.datasets.curated import promote_version
from dynamic_assets.datasets.errors import PromotionError
from dynamic_assets.datasets.staging import load_version
from dynamic_assets.db.tables import CURATED_SCHEMA, table_columns
from dynamic_assets.declarations.model import Dataset
from dynamic_assets_tests.support.drive_files import write_file
from dynamic_assets_tests.support.staging import recorded_source, stage_file, version_rows

TYPED = Dataset(
    name="typed",
    formats=["csv"],
    columns=[
        {"name": "id", "type": "integer", "nullable": False},
        {"name": "price", "type": "float"},
        {"name": "active", "type": "boolean"},
        {"name": "day", "type": "date"},
        {"name": "at", "type": "timestamp"},
        {"name": "meta", "type": "json"},
        {"name": "emb", "type": "vector(3)"},
        {"name": "name", "type": "string"},
    ],
    primary_key=["id"],
    retention_days=30,
    schema_version=3,
)
HEADER = "id,price,active,day,at,meta,emb,name\n"

DOCS = Dataset(
    name="docs",
    formats=["jsonl", "json"],
    columns=[
        {"name": "doc_id", "nullable": False},
        {"name": "n", "type": "integer"},
        {"name": "x", "type": "float"},
        {"name": "flag", "type": "boolean"},
        {"name": "day", "type": "date"},
        {"name": "at", "type": "timestamp"},
        {"name": "meta", "type": "json"},
        {"name": "emb", "type": "vector(3)"},
    ],
    primary_key=["doc_id"],
)

VECS = Dataset(
    name="vecs",
    formats=["parquet"],
    columns=[
        {"name": "item_id", "type": "integer", "nullable": False},
        {"name": "at", "type": "timestamp"},
        {"name": "meta", "type": "json"},
        {"name": "embedding", "type": "vector(3)", "nullable": False},
    ],
    primary_key=["item_id"],
    retention_days=365,
)


def curated(conn, ds: Dataset, version: str, exprs: str) -> list[tuple]:
    return version_rows(conn, CURATED_SCHEMA, ds, version, sql.SQL(exprs), "_source_row")


GOOD_CSV = (
    HEADER
    + '1,12.5,true,2024-06-01,2024-06-01T12:00:00Z,"{""a"": [1, 2]}","[1,2,3]",Ann\n'
    + '2, 3 ,no,2024-02-29,2024-06-01 14:00:00+02:00,"""text""","[0.5, -1, 2e1]",\n'
    + '3,,,,,,,""\n'
    + '4,-0.25,1,2024-12-31,2024-06-01 09:30:00,null,"[0,0,0]",Zoë\n'
)


def test_csv_values_are_typed(db, tmp_path):
    with db.connect(autocommit=True) as conn:
        file_id, _ = stage_file(conn, TYPED, "v1", tmp_path, "a.csv", GOOD_CSV)
        # A session in another zone: timestamps without a zone are still read as UTC.
        conn.execute("SET TimeZone = 'America/New_York'")
        result = promote_version(conn, TYPED, "v1")
        conn.execute("SET TimeZone = 'UTC'")
        types = table_columns(conn, CURATED_SCHEMA, "typed")
        rows = curated(conn, TYPED, "v1", "id, price, active, day, at, meta, emb::text, name")
        gov = curated(
            conn, TYPED, "v1", "_source_file_id, _source_row, _schema_version, _retain_until"
        )
    assert result.rows == 4
    assert types["id"] == "bigint"
    assert types["price"] == "double precision"
    assert types["active"] == "boolean"
    assert types["day"] == "date"
    assert types["at"] == "timestamp with time zone"
    assert types["meta"] == "jsonb"
    assert types["emb"] == "vector(3)"
    assert types["name"] == "text"
    assert rows == [
        (
            1,
            12.5,
            True,
            date(2024, 6, 1),
            datetime(2024, 6, 1, 12, tzinfo=UTC),
            {"a": [1, 2]},
            "[1,2,3]",
            "Ann",
        ),
        (
            2,
            3.0,
            False,
            date(2024, 2, 29),
            datetime(2024, 6, 1, 12, tzinfo=UTC),
            "text",
            "[0.5,-1,20]",
            None,
        ),
        (3, None, None, None, None, None, None, ""),
        (
            4,
            -0.25,
            True,
            date(2024, 12, 31),
            datetime(2024, 6, 1, 9, 30, tzinfo=UTC),
            None,
            "[0,0,0]",
            "Zoë",
        ),
    ]
    retain = date.today() + timedelta(days=30)
    assert gov == [(file_id, row, 3, retain) for row in (1, 2, 3, 4)]


def test_json_records_are_typed(db, tmp_path):
    records = [
        {
            "doc_id": "a",
            "n": 5,
            "x": 1.5,
            "flag": True,
            "day": "2024-06-01",
            "at": "2024-06-01T12:00:00+02:00",
            "meta": {"k": [1, 2], "s": "Zoë"},
            "emb": [1, 2.5, -3],
        },
        {"doc_id": "b", "n": "7", "x": 2, "flag": False, "meta": None, "emb": None},
        {"doc_id": "c", "meta": [1, "two"], "extra": "ignored"},
    ]
    text = "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n"
    # "n": "7" is a JSON string: taken as the integer 7 only where the column says `coerce`.
    docs = DOCS.model_copy(
        update={"columns": [c.model_copy(update={"coerce": c.name == "n"}) for c in DOCS.columns]}
    )
    with db.connect(autocommit=True) as conn:
        file_id, _ = stage_file(conn, docs, "2024-06-01", tmp_path, "docs.jsonl", text)
        result = promote_version(conn, docs, "2024-06-01")
        rows = curated(conn, docs, "2024-06-01", "doc_id, n, x, flag, day, at, meta, emb::text")
        gov = curated(conn, docs, "2024-06-01", "_source_file_id, _source_row, _retain_until")
    assert result.rows == 3
    assert rows == [
        (
            "a",
            5,
            1.5,
            True,
            date(2024, 6, 1),
            datetime(2024, 6, 1, 10, tzinfo=UTC),
            {"k": [1, 2], "s": "Zoë"},
            "[1,2.5,-3]",
        ),
        ("b", 7, 2.0, False, None, None, None, None),
        ("c", None, None, None, None, None, [1, "two"], None),
    ]
    # No retention declared: nothing to retain until.
    assert gov == [(file_id, 1, None), (file_id, 2, None), (file_id, 3, None)]


def test_json_array_records_are_typed(db, tmp_path):
    items = [{"doc_id": "a", "emb": [0, 0, 1]}, {"doc_id": "b", "emb": [1, 0, 0], "n": 2}]
    with db.connect(autocommit=True) as conn:
        file_id, _ = stage_file(conn, DOCS, "v1", tmp_path, "docs.json", json.dumps(items))
        promote_version(conn, DOCS, "v1")
        rows = curated(conn, DOCS, "v1", "doc_id, n, emb::text, _source_file_id, _source_row")
    assert rows == [("a", None, "[0,0,1]", file_id, 1), ("b", 2, "[1,0,0]", file_id, 2)]


def test_parquet_values_are_typed(db, tmp_path):
    table = pa.table(
        {
            "item_id": pa.array([10, 20], pa.int64()),
            "at": pa.array(
                [datetime(2024, 6, 1, 12, tzinfo=UTC), None], pa.timestamp("us", tz="UTC")
            ),
            "meta": pa.array(['{"a": 1}', None]),
            "embedding": pa.array([[1.0, 2.0, 3.0], [0.5, -0.25, 0.0]], pa.list_(pa.float32())),
        }
    )
    with db.connect(autocommit=True) as conn:
        file_id, _ = stage_file(conn, VECS, "v1", tmp_path, "part-0.parquet", table)
        conn.execute("SET TimeZone = 'Asia/Tokyo'")
        result = promote_version(conn, VECS, "v1")
        conn.execute("SET TimeZone = 'UTC'")
        types = table_columns(conn, CURATED_SCHEMA, "vecs")
        rows = curated(
            conn, VECS, "v1", "item_id, at, meta, embedding::text, _source_file_id, _source_row"
        )
        retain = curated(conn, VECS, "v1", "_retain_until, _schema_version")
        index = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'ai_curated' AND indexdef LIKE '%hnsw%'"
        ).fetchall()
    assert result.rows == 2
    assert types["at"] == "timestamp with time zone"
    assert types["embedding"] == "vector(3)"
    assert rows == [
        (10, datetime(2024, 6, 1, 12, tzinfo=UTC), {"a": 1}, "[1,2,3]", file_id, 1),
        (20, None, None, "[0.5,-0.25,0]", file_id, 2),
    ]
    assert retain == [(date.today() + timedelta(days=365), 1)] * 2
    assert len(index) == 1  # embeddings are searchable by cosine distance


def test_parquet_vector_of_the_wrong_dimension_is_refused(db, tmp_path):
    table = pa.table(
        {
            "item_id": pa.array([1, 2], pa.int64()),
            "at": pa.array([None, None], pa.timestamp("us", tz="UTC")),
            "meta": pa.array([None, None], pa.string()),
            "embedding": pa.array([[1.0, 2.0, 3.0], [1.0, 2.0]], pa.list_(pa.float32())),
        }
    )
    with db.connect(autocommit=True) as conn:
        _, path = stage_file(conn, VECS, "v1", tmp_path, "part-0.parquet", table)
        with pytest.raises(PromotionError) as info:
            promote_version(conn, VECS, "v1")
    msg = str(info.value)
    assert "column embedding" in msg
    assert "vector(3)" in msg
    assert f"{path} row 2" in msg


def _curated_names(conn, version: str) -> list[tuple]:
    return curated(conn, TYPED, version, "id, name, _source_file_id")


def test_a_bad_cast_names_column_file_and_row_and_keeps_the_curated_rows(db, tmp_path):
    good = HEADER + "1,1.5,true,2024-06-01,,,,old1\n2,2.5,false,2024-06-02,,,,old2\n"
    bad = (
        HEADER
        + "1,1.5,true,2024-06-01,,,,new1\n"
        + '2,"12,5",true,2024-06-02,,,,new2\n'
        + "3,3.5,true,2024-13-45,,,,new3\n"
    )
    with db.connect(autocommit=True) as conn:
        good_id, _ = stage_file(conn, TYPED, "v1", tmp_path, "a.csv", good)
        promote_version(conn, TYPED, "v1")
        before = _curated_names(conn, "v1")
        _, bad_path = stage_file(conn, TYPED, "v1", tmp_path, "b.csv", bad)
        with pytest.raises(PromotionError) as info:
            promote_version(conn, TYPED, "v1")
        after = _curated_names(conn, "v1")
    assert before == [(1, "old1", good_id), (2, "old2", good_id)]
    assert after == before
    msg = str(info.value)
    assert "column price" in msg
    assert "not a valid float" in msg
    assert f"{bad_path} row 2: '12,5'" in msg
    assert "column day" in msg
    assert "not a valid date" in msg
    assert f"{bad_path} row 3: '2024-13-45'" in msg
    kinds = {(p["kind"], p["column"], p["count"]) for p in info.value.problems}
    assert kinds == {("cast", "price", 1), ("cast", "day", 1)}


def test_duplicate_primary_keys_are_named_with_both_rows(db, tmp_path):
    text = HEADER + "1,,,,,,,a\n2,,,,,,,b\n 1 ,,,,,,,c\n"
    with db.connect(autocommit=True) as conn:
        _, path = stage_file(conn, TYPED, "v1", tmp_path, "dup.csv", text)
        with pytest.raises(PromotionError) as info:
            promote_version(conn, TYPED, "v1")
        exists = conn.execute(
            "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent "
            "WHERE c.relname = 'typed' AND c.relnamespace = 'ai_curated'::regnamespace"
        ).fetchone()[0]
    msg = str(info.value)
    assert "primary key (id)" in msg
    assert "id=1" in msg
    assert f"{path} row 1 and {path} row 3" in msg
    assert exists == 0  # nothing was curated


def test_duplicate_keys_across_files_name_both_files(db, tmp_path):
    with db.connect(autocommit=True) as conn:
        a = write_file(tmp_path, "a.csv", HEADER + "1,,,,,,,a\n2,,,,,,,b\n")
        b = write_file(tmp_path, "b.csv", HEADER + "3,,,,,,,c\n2,,,,,,,d\n")
        sources = [recorded_source(conn, TYPED, "v1", local) for local in (a, b)]
        paths = [source.path for source in sources]
        load_version(conn, TYPED, "v1", sources)
        with pytest.raises(PromotionError) as info:
            promote_version(conn, TYPED, "v1")
    msg = str(info.value)
    assert "id=2" in msg
    assert f"{paths[0]} row 2 and {paths[1]} row 2" in msg


def test_a_null_in_a_non_nullable_column_is_refused(db, tmp_path):
    text = HEADER + "1,,,,,,,a\n , 2.5,,,,,,b\n"
    with db.connect(autocommit=True) as conn:
        _, path = stage_file(conn, TYPED, "v1", tmp_path, "n.csv", text)
        with pytest.raises(PromotionError) as info:
            promote_version(conn, TYPED, "v1")
    msg = str(info.value)
    assert "column id" in msg
    assert "declared not nullable" in msg
    assert f"{path} row 2" in msg


def test_a_null_in_a_non_nullable_json_field_is_refused(db, tmp_path):
    text = '{"doc_id": "a"}\n{"n": 1}\n{"doc_id": null}\n'
    with db.connect(autocommit=True) as conn:
        _, path = stage_file(conn, DOCS, "v1", tmp_path, "d.jsonl", text)
        with pytest.raises(PromotionError) as info:
            promote_version(conn, DOCS, "v1")
    msg = str(info.value)
    assert "column doc_id: 2 row(s) have no value" in msg
    assert f"{path} row 2" in msg


def test_repromoting_a_version_replaces_its_rows(db, tmp_path):
    with db.connect(autocommit=True) as conn:
        stage_file(
            conn, TYPED, "v1", tmp_path, "a.csv", HEADER + "1,,,,,,,a\n2,,,,,,,b\n3,,,,,,,c\n"
        )
        stage_file(conn, TYPED, "v2", tmp_path, "x.csv", HEADER + "1,,,,,,,x\n")
        promote_version(conn, TYPED, "v1")
        promote_version(conn, TYPED, "v2")
        assert [r[:2] for r in _curated_names(conn, "v1")] == [(1, "a"), (2, "b"), (3, "c")]

        new_id, _ = stage_file(
            conn, TYPED, "v1", tmp_path, "b.csv", HEADER + "2,,,,,,,B\n5,,,,,,,E\n"
        )
        result = promote_version(conn, TYPED, "v1")
        again = promote_version(conn, TYPED, "v1")  # idempotent
        rows = _curated_names(conn, "v1")
        total = conn.execute(
            "SELECT count(*), count(DISTINCT (dataset_version, id)) FROM ai_curated.typed"
        ).fetchone()
        other = _curated_names(conn, "v2")
    assert result.rows == again.rows == 2
    assert rows == [(2, "B", new_id), (5, "E", new_id)]
    assert total == (3, 3)
    assert [r[:2] for r in other] == [(1, "x")]


def test_after_swap_runs_in_the_same_transaction(db, tmp_path):
    seen = {}

    def look(conn, rows):
        seen["rows"] = rows
        seen["names"] = [r[1] for r in _curated_names(conn, "v1")]

    def fail(conn, rows):
        look(conn, rows)
        raise RuntimeError("registry write failed")

    with db.connect(autocommit=True) as conn:
        stage_file(
            conn, TYPED, "v1", tmp_path, "a.csv", HEADER + "1,,,,,,,a\n2,,,,,,,b\n3,,,,,,,c\n"
        )
        promote_version(conn, TYPED, "v1", after_swap=look)
        assert seen == {"rows": 3, "names": ["a", "b", "c"]}

        stage_file(conn, TYPED, "v1", tmp_path, "b.csv", HEADER + "7,,,,,,,new\n")
        with pytest.raises(RuntimeError, match="registry write failed"):
            promote_version(conn, TYPED, "v1", after_swap=fail)
        # Inside the transaction the new rows were in place; after the failure, the old ones are.
        assert seen == {"rows": 1, "names": ["new"]}
        assert [r[1] for r in _curated_names(conn, "v1")] == ["a", "b", "c"]
        leftovers = conn.execute(
            "SELECT count(*) FROM pg_class WHERE relname LIKE 'typed\\_\\_b\\_%' AND relkind = 'r'"
        ).fetchone()[0]
    assert leftovers == 0


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("short.csv", HEADER + '1,,,,,,"[1,2,3]",a\n2,,,,,,"[1,2]",b\n'),
        ("syntax.csv", HEADER + '1,,,,,,"1,2,3",a\n'),
    ],
    ids=["wrong-dimension", "no-brackets"],
)
def test_a_bad_vector_from_csv_is_a_promotion_error(db, tmp_path, name, data):
    with db.connect(autocommit=True) as conn:
        _, path = stage_file(conn, TYPED, "v1", tmp_path, name, data)
        with pytest.raises(PromotionError) as info:
            promote_version(conn, TYPED, "v1")
    assert "column emb" in str(info.value)
    assert path in str(info.value)


def test_values_of_a_sensitive_dataset_stay_out_of_messages(db, tmp_path):
    secret = TYPED.model_copy(update={"name": "secret_typed", "sensitivity": "sensitive"})
    bad = (
        HEADER + '1,"12,5",true,2024-06-01,,,,Alice Secret\n 1 ,3.5,true,2024-06-02,,,,Bob Hidden\n'
    )
    with db.connect(autocommit=True) as conn:
        _, path = stage_file(conn, secret, "v1", tmp_path, "s.csv", bad)
        with pytest.raises(PromotionError) as info:
            promote_version(conn, secret, "v1")
    msg = str(info.value)
    assert f"column price: 1 value(s) are not a valid float (first: {path} row 1)" in msg
    assert "primary key (id)" in msg and f"{path} row 1 and {path} row 2" in msg
    everything = msg + json.dumps(info.value.problems, default=str)
    for value in ("12,5", "Alice", "id=1"):
        assert value not in everything


KEYED = Dataset(
    name="keyed",
    formats=["csv"],
    columns=[
        {"name": "doc_id", "nullable": False},
        {"name": "part", "nullable": False},
        {"name": "n", "type": "integer"},
    ],
    primary_key=["doc_id"],
)


def _keyed_rows(conn, ds: Dataset) -> list[tuple]:
    return curated(conn, ds, "v1", "doc_id, part, n")


def test_a_key_too_large_for_the_index_is_refused_before_promotion(db, tmp_path):
    huge = "k" * 6_000_000  # 6 MB: Postgres would say "index row requires 68728 bytes"
    with db.connect(autocommit=True) as conn:
        stage_file(conn, KEYED, "v1", tmp_path, "a.csv", "doc_id,part,n\na,p,1\nb,p,2\n")
        promote_version(conn, KEYED, "v1")
        before = _keyed_rows(conn, KEYED)
        _, path = stage_file(
            conn, KEYED, "v1", tmp_path, "b.csv", f"doc_id,part,n\na,p,1\n{huge},p,2\n"
        )
        problems = staging_problems(conn, KEYED, "v1")
        with pytest.raises(PromotionError) as info:
            promote_version(conn, KEYED, "v1")
        after = _keyed_rows(conn, KEYED)
    (problem,) = [p for p in problems if p.kind == "key_size"]
    assert problem.count == 1 and problem.column == "doc_id"
    assert f"{path} row 2" in problem.message
    assert "primary key (doc_id)" in problem.message
    assert f"{key_bytes_limit(KEYED):,} bytes" in problem.message
    assert "6,000,002 bytes with the version" in problem.message  # 6 MB and "v1"
    msg = str(info.value)
    assert problem.message in msg
    assert "index row" not in msg
    assert after == before == [("a", "p", 1), ("b", "p", 2)]


def test_a_composite_key_is_measured_as_a_whole(db, tmp_path):
    pair = KEYED.model_copy(update={"name": "keyed_pair", "primary_key": ["doc_id", "part"]})
    half = "h" * 1_500  # each column fits on its own; together they pass the bound
    text = f"doc_id,part,n\nsmall,p,1\n{half},{half},2\n{half},p,3\n"
    with db.connect(autocommit=True) as conn:
        _, path = stage_file(conn, pair, "v1", tmp_path, "pair.csv", text)
        problems = staging_problems(conn, pair, "v1")
    (problem,) = problems
    assert problem.kind == "key_size" and problem.count == 1
    assert problem.column == "doc_id,part"
    assert f"{path} row 2" in problem.message
    assert "primary key (doc_id, part)" in problem.message


def test_the_largest_key_within_the_bound_is_curated(db, tmp_path):
    # Incompressible text, so that Postgres indexes it as it is: the bound is a safe one.
    limit = key_bytes_limit(KEYED)
    fits = secrets.token_hex(limit)[: limit - len(b"v1")]
    with db.connect(autocommit=True) as conn:
        stage_file(conn, KEYED, "v1", tmp_path, "edge.csv", f"doc_id,part,n\n{fits},p,1\n")
        assert staging_problems(conn, KEYED, "v1") == []
        promote_version(conn, KEYED, "v1")
        assert _keyed_rows(conn, KEYED) == [(fits, "p", 1)]
