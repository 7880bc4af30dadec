"""Declaring a dataset from sample files: types, nullability, key guess, expectations, errors."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dynamic_assets.declarations.infer import add_to_declarations, infer_dataset
from dynamic_assets.declarations.model import (
    DEMO_CONFIG,
    Dataset,
    Declarations,
    Expectation,
    load_declarations,
    save_declarations,
)
from dynamic_assets.demo.seed import seed_drive

SYMBOLS = ["AAPL", "MSFT", "GOOG", "AMZN"]


def types(ds: Dataset) -> dict[str, str]:
    return {c.name: c.type for c in ds.columns}


def nullable(ds: Dataset) -> dict[str, bool]:
    return {c.name: c.nullable for c in ds.columns}


def expectations(ds: Dataset) -> list[tuple[str, str | None, dict[str, Any]]]:
    return [
        (e.type, e.kwargs.get("column"), {k: v for k, v in e.kwargs.items() if k != "column"})
        for e in ds.expectations
    ]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def market_csv(path: Path, days: int = 15) -> Path:
    """Daily bars: [date, symbol] is the key; exchange is a category; note is mostly empty.

    The volume happens to be unique in the sample too, as it would in real bars.
    """
    lines = ["date,symbol,exchange,open,close,volume,halted,note,fetched_at,signal"]
    start = date(2024, 6, 1)
    for d in range(days):
        for i, sym in enumerate(SYMBOLS):
            day = (start + timedelta(days=d)).isoformat()
            exchange = "NYSE" if i % 2 else "NASDAQ"
            note = "split" if (d, i) == (3, 1) else ""
            halted = "true" if (d + i) % 5 == 0 else "False"
            vec = json.dumps([round(0.1 * d, 2), float(i), -1.5])
            lines.append(
                f"{day},{sym},{exchange},{100 + d + i / 4},{101.5 + d},{1000 * d + i},"
                f'{halted},{note},{day}T16:00:0{i}Z,"{vec}"'
            )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------- CSV


def test_csv_types_nullability_composite_key_and_expectations(tmp_path: Path) -> None:
    ds = infer_dataset("market", [market_csv(tmp_path / "bars.csv")])

    assert types(ds) == {
        "date": "date",
        "symbol": "string",
        "exchange": "string",
        "open": "float",
        "close": "float",
        "volume": "integer",
        "halted": "boolean",
        "note": "string",
        "fetched_at": "timestamp",
        "signal": "vector(3)",
    }
    assert nullable(ds) == {name: name == "note" for name in types(ds)}
    assert ds.primary_key == ["date", "symbol"]  # leading columns, not the unique volume
    assert ds.formats == ["csv"]
    assert ds.sensitivity == "internal"
    assert ds.description.startswith("Declared from 1 sample file(s)")
    assert expectations(ds) == [
        ("expect_table_row_count_to_be_between", None, {"min_value": 1}),
        ("expect_column_values_to_be_in_set", "exchange", {"value_set": ["NASDAQ", "NYSE"]}),
        ("expect_column_values_to_be_between", "open", {"min_value": 0}),
        ("expect_column_values_to_be_between", "close", {"min_value": 0}),
        ("expect_column_values_to_be_between", "volume", {"min_value": 0}),
    ]
    # A value set only warns: a new version naturally brings new values.
    assert [e.severity for e in ds.expectations] == ["error", "warn", "error", "error", "error"]


def test_csv_single_id_key_and_mixed_values(tmp_path: Path) -> None:
    rows = ["id,code,amount,ratio,when,mixed,padded,flag,vec"]
    for i in range(1, 61):
        rows.append(
            f"{i},{'A' if i % 2 else 'B'},{i - 30},{i / 2},"
            f"{'2024-06-01' if i % 3 else '2024-06-01 10:00:00+02:00'},"
            f"{'x' if i == 7 else i},{i:03d},{'true' if i % 2 else ''},"
            f'"{json.dumps([1.0] * (2 if i == 9 else 3))}"'
        )
    path = tmp_path / "t.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")

    ds = infer_dataset("things", [path])

    assert types(ds) == {
        "id": "integer",
        "code": "string",
        "amount": "integer",
        "ratio": "float",
        "when": "timestamp",  # dates and timestamps together
        "mixed": "string",  # one 'x' among integers
        "padded": "string",  # leading zeros are kept as text
        "flag": "boolean",
        "vec": "string",  # lists of changing length are no vector
    }
    assert nullable(ds)["flag"] is True
    assert nullable(ds)["id"] is False
    assert ds.primary_key == ["id"]
    found = expectations(ds)
    assert ("expect_column_values_to_be_between", "amount", {"min_value": 0}) not in found
    assert ("expect_column_values_to_be_between", "ratio", {"min_value": 0}) in found
    assert ("expect_column_values_to_be_in_set", "code", {"value_set": ["A", "B"]}) in found


def test_csv_blank_cells_are_nulls_of_typed_columns_and_text_of_strings(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text('n,s\n1,a\n  ,""\n3,c\n', encoding="utf-8")
    ds = infer_dataset("blanks", [path])
    assert types(ds) == {"n": "integer", "s": "string"}
    assert nullable(ds) == {"n": True, "s": False}


def test_low_cardinality_needs_fifty_values(tmp_path: Path) -> None:
    path = tmp_path / "few.csv"
    path.write_text("k,cat\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(49)), "utf-8")
    ds = infer_dataset("few", [path])
    assert [e[0] for e in expectations(ds)] == [
        "expect_table_row_count_to_be_between",
        "expect_column_values_to_be_between",
    ]


def test_sample_rows_bounds_what_is_read(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("k,v\n" + "".join(f"{i},{i}\n" for i in range(200)) + "x,oops\n", "utf-8")
    assert types(infer_dataset("s", [path], sample_rows=200)) == {"k": "integer", "v": "integer"}
    assert types(infer_dataset("s", [path])) == {"k": "string", "v": "string"}


# ------------------------------------------------------------------------------- JSON / JSONL


def corpus_rows(n: int) -> list[dict[str, Any]]:
    base = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)
    rows = []
    for i in range(n):
        row: dict[str, Any] = {
            "doc_id": f"d{i:04d}",
            "lang": ["en", "de", "fr"][i % 3],
            "body": f"text {i}",
            "published_at": (base + timedelta(minutes=i)).isoformat().replace("+00:00", "Z"),
            "day": (base.date() + timedelta(days=i % 4)).isoformat(),
            "tokens": i * 3,
            "score": i / 10 if i % 2 else i,  # ints and floats mixed: float
            "ok": i % 2 == 0,
            "meta": {"source": "wire", "tags": ["a", i]},
            "embedding": [0.5] * 16,
        }
        if i % 7:
            row["title"] = f"Title {i}"  # missing in some rows: nullable
        rows.append(row)
    return rows


CORPUS_TYPES = {
    "doc_id": "string",
    "lang": "string",
    "body": "string",
    "published_at": "timestamp",
    "day": "date",
    "tokens": "integer",
    "score": "float",
    "ok": "boolean",
    "meta": "json",
    "embedding": "vector(16)",
    "title": "string",
}


def test_jsonl_types_key_and_expectations(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "corpus.jsonl", corpus_rows(60))
    ds = infer_dataset("corpus", [path])

    assert types(ds) == CORPUS_TYPES
    assert [n for n, v in nullable(ds).items() if v] == ["title"]
    assert ds.primary_key == ["doc_id"]
    assert ds.formats == ["jsonl"]
    assert expectations(ds) == [
        ("expect_table_row_count_to_be_between", None, {"min_value": 1}),
        ("expect_column_values_to_be_in_set", "lang", {"value_set": ["de", "en", "fr"]}),
        ("expect_column_values_to_be_between", "tokens", {"min_value": 0}),
        ("expect_column_values_to_be_between", "score", {"min_value": 0}),
    ]


def test_json_array_and_jsonl_together(tmp_path: Path) -> None:
    rows = corpus_rows(20)
    (tmp_path / "a.json").write_text(json.dumps(rows[:10], indent=2), encoding="utf-8")
    write_jsonl(tmp_path / "b.ndjson", rows[10:])
    (tmp_path / "README.md").write_text("# not data\n", encoding="utf-8")

    ds = infer_dataset("corpus", [tmp_path])

    assert types(ds) == CORPUS_TYPES
    assert ds.formats == ["json", "jsonl"]
    assert ds.description.startswith("Declared from 2 sample file(s)")


def test_json_mixed_values_are_json_and_null_only_columns_are_nullable_strings(
    tmp_path: Path,
) -> None:
    rows = [
        {"id": 1, "v": 1, "vec": [1, 2], "nothing": None, "nested": [{"a": 1}]},
        {"id": 2, "v": "two", "vec": [1, 2, 3], "nothing": None, "nested": []},
    ]
    (tmp_path / "m.json").write_text(json.dumps(rows), encoding="utf-8")
    ds = infer_dataset("mixed", [tmp_path / "m.json"])
    assert types(ds) == {
        "id": "integer",
        "v": "json",
        "vec": "json",
        "nothing": "string",
        "nested": "json",
    }
    assert nullable(ds)["nothing"] is True
    assert ds.primary_key == ["id"]


def test_bad_jsonl_line_is_reported_with_its_number(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    lines = [json.dumps({"a": i}) for i in range(5)] + ["", '{"a": 5,}', '{"a": 6}']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"x\.jsonl: line 7: not valid JSON \(") as info:
        infer_dataset("x", [path])
    assert str(path) in str(info.value)


def test_jsonl_line_that_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"x\.jsonl: line 2: expected a JSON object, found an array"
    ):
        infer_dataset("x", [path])


def test_bad_json_array_names_the_file_and_item(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[{"a": 1}, {"a": 2}, {"a": }]', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.json: not valid JSON after item 2"):
        infer_dataset("x", [path])
    path.write_text('[{"a": 1}, 3]', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.json: item 2: expected a JSON object"):
        infer_dataset("x", [path])


# ------------------------------------------------------------------------------------ Parquet


def test_parquet_types_from_the_arrow_schema(tmp_path: Path) -> None:
    n = 60
    rng = np.random.default_rng(7)
    table = pa.table(
        {
            "item_id": pa.array(range(n), pa.int32()),
            "label": pa.array([["cat", "dog", "eel"][i % 3] for i in range(n)]).dictionary_encode(),
            "score": pa.array([None] + [float(x) for x in rng.random(n - 1)], pa.float64()),
            "price": pa.array([Decimal(f"{i}.25") for i in range(n)], pa.decimal128(10, 2)),
            "active": pa.array([i % 2 == 0 for i in range(n)]),
            "day": pa.array([date(2024, 1, 1) + timedelta(days=i) for i in range(n)], pa.date32()),
            "created_at": pa.array(
                [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=i) for i in range(n)],
                pa.timestamp("ms", tz="UTC"),
            ),
            "embedding": pa.array(rng.random((n, 16)).tolist(), pa.list_(pa.float32())),
            "fixed": pa.array(rng.random((n, 4)).tolist(), pa.list_(pa.float64(), 4)),
            "ragged": pa.array([[1.0] * (1 + i % 2) for i in range(n)], pa.list_(pa.float32())),
            "tags": pa.array([["a", "b"]] * n, pa.list_(pa.string())),
            "meta": pa.array([{"k": i, "v": "x"} for i in range(n)]),
            "attrs": pa.array([[("a", 1)]] * n, pa.map_(pa.string(), pa.int64())),
        }
    )
    path = tmp_path / "emb.parquet"
    pq.write_table(table, path)

    ds = infer_dataset("embeddings", [path])

    assert types(ds) == {
        "item_id": "integer",
        "label": "string",
        "score": "float",
        "price": "float",
        "active": "boolean",
        "day": "date",
        "created_at": "timestamp",
        "embedding": "vector(16)",
        "fixed": "vector(4)",
        "ragged": "json",
        "tags": "json",
        "meta": "json",
        "attrs": "json",
    }
    assert [name for name, v in nullable(ds).items() if v] == ["score"]
    assert ds.primary_key == ["item_id"]
    assert ds.formats == ["parquet"]
    assert ("expect_column_values_to_be_in_set", "label", {"value_set": ["cat", "dog", "eel"]}) in (
        expectations(ds)
    )


def test_parquet_nulls_in_a_later_file_make_a_column_nullable(tmp_path: Path) -> None:
    pq.write_table(pa.table({"id": [1, 2], "v": [1.0, 2.0]}), tmp_path / "a.pq")
    pq.write_table(pa.table({"id": [3, 4], "v": [None, -2.0]}), tmp_path / "b.parquet")
    ds = infer_dataset("p", [tmp_path])
    assert nullable(ds) == {"id": False, "v": True}
    assert ds.formats == ["parquet"]
    assert [e[1] for e in expectations(ds)] == [None, "id"]  # v goes below zero


def test_json_file_of_objects_one_per_line_is_read_as_json_lines(tmp_path: Path) -> None:
    # The loader takes a .json file that starts with '{' as JSON Lines; so does declare.
    path = write_jsonl(tmp_path / "lines.json", [{"id": 1, "v": 0.5}, {"id": 2, "v": 1.5}])
    ds = infer_dataset("lines", [path])
    assert types(ds) == {"id": "integer", "v": "float"}
    assert ds.formats == ["json"]


# ------------------------------------------------------------------------------- Primary key


def test_key_is_the_first_unique_column_when_no_id(tmp_path: Path) -> None:
    rows = [{"price": i / 2, "group": i % 3, "code": f"c{i}", "x": i} for i in range(10)]
    ds = infer_dataset("k", [write_jsonl(tmp_path / "k.jsonl", rows)])
    assert ds.primary_key == ["code"]  # price is unique too, but a float


def test_no_key_when_nothing_is_unique(tmp_path: Path) -> None:
    rows = [{"a": i % 2, "b": i % 2, "c": 0.5} for i in range(10)]
    ds = infer_dataset("k", [write_jsonl(tmp_path / "k.jsonl", rows)])
    assert ds.primary_key == []


def test_id_named_column_is_preferred_and_must_be_unique(tmp_path: Path) -> None:
    rows = [{"name": f"n{i}", "user_id": i % 3, "orderId": 100 + i} for i in range(10)]
    ds = infer_dataset("k", [write_jsonl(tmp_path / "k.jsonl", rows)])
    assert ds.primary_key == ["order_id"]
    assert ds.column("order_id").source == "orderId"


def test_duplicates_across_files_spoil_a_key(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", [{"id": i, "seq": i} for i in range(5)])
    write_jsonl(tmp_path / "b.jsonl", [{"id": i, "seq": 10 + i} for i in range(3, 8)])
    ds = infer_dataset("k", [tmp_path / "a.jsonl", tmp_path / "b.jsonl"])
    assert ds.primary_key == ["seq"]


def test_keys_are_unique_per_version_folder(tmp_path: Path) -> None:
    for version in ("v1.0", "v1.1"):
        (tmp_path / version).mkdir()
        write_jsonl(tmp_path / version / "part.jsonl", [{"id": i, "v": i % 2} for i in range(5)])
    assert infer_dataset("k", [tmp_path]).primary_key == ["id"]
    flat = tmp_path / "flat"
    flat.mkdir()
    for version in ("v1.0", "v1.1"):
        (tmp_path / version / "part.jsonl").rename(flat / f"{version}.jsonl")
    assert infer_dataset("k", [flat]).primary_key == []


def test_seeded_demo_drive_declares_like_the_demo_declarations(tmp_path: Path) -> None:
    seed_drive(tmp_path)
    for demo in load_declarations(DEMO_CONFIG).datasets:
        ds = infer_dataset(demo.name, [tmp_path / "datasets" / demo.name])
        assert types(ds) == types(demo), demo.name
        assert ds.primary_key == demo.primary_key, demo.name
        assert ds.formats == sorted(demo.formats), demo.name
        # The sample cannot show that a column may be null, only that it is not always filled.
        assert not any(nullable(ds)[n] and not v for n, v in nullable(demo).items()), demo.name


# ---------------------------------------------------------------------------------- Refusals


def test_mixed_format_families_are_rejected_naming_the_files(tmp_path: Path) -> None:
    market_csv(tmp_path / "a.csv", days=1)
    write_jsonl(tmp_path / "b.jsonl", [{"a": 1}])
    with pytest.raises(ValueError, match="mix format families") as info:
        infer_dataset("x", [tmp_path])
    assert "a.csv" in str(info.value) and "b.jsonl" in str(info.value)


@pytest.mark.parametrize(
    ("bad", "named"),
    [("_row", "row"), ("dataset_version", "dataset_version_2"), ("price$", "price")],
)
def test_a_header_that_is_no_column_name_is_declared_under_one(
    tmp_path: Path, bad: str, named: str
) -> None:
    # A header the pipeline would refuse as a column name is declared under an allowed name, and
    # read from the file by the header (its `source`).
    path = tmp_path / "bad.csv"
    path.write_text(f"id,{bad}\n1,2\n", encoding="utf-8")
    ds = infer_dataset("x", [path])
    assert [(c.name, c.header) for c in ds.columns] == [("id", "id"), (named, bad)]


def test_a_json_key_that_is_no_column_name_is_declared_under_one(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "k.jsonl", [{"a": 1}, {"a": 2, "_secret": 3}])
    ds = infer_dataset("x", [path])
    assert [(c.name, c.source, c.nullable) for c in ds.columns] == [
        ("a", None, False),
        ("secret", "_secret", True),
    ]


def test_other_refusals(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(ValueError, match="not a data file"):
        infer_dataset("x", [tmp_path / "notes.txt"])
    with pytest.raises(ValueError, match="no data files"):
        infer_dataset("x", [tmp_path])
    with pytest.raises(ValueError, match="no such file"):
        infer_dataset("x", [tmp_path / "missing.csv"])
    with pytest.raises(ValueError, match="dataset name"):
        infer_dataset("Bad-Name", [tmp_path / "notes.txt"])
    (tmp_path / "dup.csv").write_text("a,a\n1,2\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"dup\.csv: column\(s\) named twice"):
        infer_dataset("x", [tmp_path / "dup.csv"])
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3,4\n5,6,7\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"ragged\.csv: line 4: not a readable CSV file"):
        infer_dataset("x", [tmp_path / "ragged.csv"])


# --------------------------------------------------------------------------- Declarations file


def test_round_trip_through_the_declarations_file(tmp_path: Path) -> None:
    market = infer_dataset("market", [market_csv(tmp_path / "bars.csv")])
    corpus = infer_dataset("corpus", [write_jsonl(tmp_path / "c.jsonl", corpus_rows(60))])
    decls = add_to_declarations(Declarations(), market)
    decls = add_to_declarations(decls, corpus)

    path = tmp_path / "conf" / "datasets.yaml"
    save_declarations(decls, path)
    loaded = load_declarations(path)

    assert loaded.dataset("market") == market
    assert loaded.dataset("corpus") == corpus
    assert loaded == decls


def test_add_refuses_a_declared_name_unless_replace(tmp_path: Path) -> None:
    first = infer_dataset("market", [market_csv(tmp_path / "bars.csv", days=2)])
    other = Dataset(name="other", columns=[{"name": "a"}])
    decls = add_to_declarations(add_to_declarations(Declarations(), first), other)

    second = first.model_copy(update={"sensitivity": "public"})
    with pytest.raises(ValueError, match=r"'market' is already declared.*--replace"):
        add_to_declarations(decls, second)
    replaced = add_to_declarations(decls, second, replace=True)
    assert [d.name for d in replaced.datasets] == ["market", "other"]
    assert replaced.dataset("market").sensitivity == "public"
    assert decls.dataset("market").sensitivity == "internal"  # the original is left as it was
    assert isinstance(replaced.dataset("market").expectations[0], Expectation)
