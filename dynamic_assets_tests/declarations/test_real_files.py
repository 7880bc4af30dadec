"""`declare` on files as they come: headers that are no identifiers, pandas' index column, free
text beside categories, wide tables keyed by a date."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from dynamic_assets.declarations.infer import infer_dataset, infer_declaration
from dynamic_assets.declarations.model import (
    Column,
    ConfigError,
    Dataset,
    Declarations,
    load_declarations,
    save_declarations,
)
from dynamic_assets.declarations.names import NAME_RULE

CARS_HEADER = "Date,Adj. Close*,Miles per Gallon,Horsepower"


def cars_csv(path: Path, rows: int = 4) -> Path:
    lines = [CARS_HEADER]
    for i in range(rows):
        lines.append(f"2024-06-{i + 1:02d},{100 + i}.5,{20 + i}.1,{100 + 10 * i}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------------- column names


def test_real_headers_get_snake_case_names_and_keep_their_source(tmp_path: Path) -> None:
    ds = infer_dataset("cars", [cars_csv(tmp_path / "cars.csv")])

    assert [(c.name, c.source) for c in ds.columns] == [
        ("date", "Date"),
        ("adj_close", "Adj. Close*"),
        ("miles_per_gallon", "Miles per Gallon"),
        ("horsepower", "Horsepower"),
    ]
    assert [c.header for c in ds.columns] == CARS_HEADER.split(",")
    assert ds.primary_key == ["date"]

    path = tmp_path / "decls.yaml"
    save_declarations(Declarations(datasets=[ds]), path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert raw["datasets"][0]["columns"][1] == {
        "name": "adj_close",
        "type": "float",
        "nullable": False,
        "source": "Adj. Close*",
    }
    assert load_declarations(path).dataset("cars") == ds


def test_a_header_that_is_already_a_snake_case_name_records_no_source(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,close_price\n1,2.5\n2,3.5\n", encoding="utf-8")
    ds = infer_dataset("t", [path])
    assert [(c.name, c.source) for c in ds.columns] == [("id", None), ("close_price", None)]
    saved = tmp_path / "d.yaml"
    save_declarations(Declarations(datasets=[ds]), saved)
    assert "source" not in saved.read_text(encoding="utf-8")


def test_proposed_names_never_clash_nor_start_otherwise_than_with_a_letter(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "Close,close,2024 Sales,_row,dataset_version,%,Température\n1,2,3,4,5,6,7\n",
        encoding="utf-8",
    )
    ds = infer_dataset("t", [path])
    assert [(c.name, c.header) for c in ds.columns] == [
        ("close_2", "Close"),  # `close` is a header that is its own name
        ("close", "close"),
        ("c_2024_sales", "2024 Sales"),
        ("row", "_row"),
        ("dataset_version_2", "dataset_version"),
        ("column_6", "%"),
        ("temperature", "Température"),
    ]


def test_pandas_index_column_is_dropped(tmp_path: Path) -> None:
    frame = pd.DataFrame({"Horsepower": [130, 165, 150], "Name": ["a", "b", "c"]}, index=[3, 5, 9])
    table = pa.Table.from_pandas(frame)
    assert "__index_level_0__" in table.column_names
    pq.write_table(table, tmp_path / "cars.parquet")

    ds = infer_dataset("cars", [tmp_path / "cars.parquet"])

    assert [(c.name, c.source) for c in ds.columns] == [
        ("horsepower", "Horsepower"),
        ("name", "Name"),
    ]


@pytest.mark.parametrize("bad", ["2nd", "_row", "price$", "é"])
def test_refusal_of_a_declared_name_states_the_rule(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(
        yaml.safe_dump({"datasets": [{"name": "t", "columns": [{"name": bad}]}]}), "utf-8"
    )
    with pytest.raises(ConfigError) as info:
        load_declarations(path)
    assert f"column name {bad!r} is not allowed: {NAME_RULE}" in str(info.value)
    assert NAME_RULE == (
        "a column name starts with an ASCII letter (A-Z, a-z), goes on with ASCII letters, "
        "digits, '_', '-' or spaces, and is at most 63 characters long"
    )
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    declaring = readme.split("## Declaring a dataset", 1)[1].split("\n## ", 1)[0]
    assert NAME_RULE[0].upper() + NAME_RULE[1:] in " ".join(declaring.split())


def test_a_source_header_is_any_non_empty_text_without_control_characters() -> None:
    assert Column(name="adj_close", source="Adj. Close*").header == "Adj. Close*"
    assert Column(name="adj_close").header == "adj_close"
    for bad in ("", "a\x00b", "line\nbreak"):
        with pytest.raises(ValueError, match="source header"):
            Column(name="x", source=bad)
    with pytest.raises(ValueError, match="maps two columns from the header 'A'"):
        Dataset(name="t", columns=[{"name": "a", "source": "A"}, {"name": "b", "source": "A"}])


# -------------------------------------------------------------------------- expectations


def test_free_text_gets_no_value_set_and_value_sets_only_warn(tmp_path: Path) -> None:
    few = tmp_path / "few.csv"
    few.write_text(
        "id,note\n1,first delivery late\n2,ok\n3,customer called twice\n", encoding="utf-8"
    )
    ds = infer_dataset("notes", [few])
    assert [e.kwargs.get("column") for e in ds.expectations] == [None, "id"]

    # 60 rows, 15 distinct comments: few distinct values, but not few for so many rows.
    many = tmp_path / "many.csv"
    many.write_text(
        "id,side,comment,qty\n"
        + "".join(f"{i},{'buy' if i % 2 else 'sell'},remark {i % 15},{i}\n" for i in range(60)),
        encoding="utf-8",
    )
    ds = infer_dataset("trades", [many])
    found = [(e.type, e.kwargs.get("column"), e.severity) for e in ds.expectations]
    assert found == [
        ("expect_table_row_count_to_be_between", None, "error"),
        ("expect_column_values_to_be_between", "id", "error"),
        ("expect_column_values_to_be_in_set", "side", "warn"),
        ("expect_column_values_to_be_between", "qty", "error"),
    ]


# --------------------------------------------------------------------------- primary key


def test_a_unique_date_column_is_the_key_of_a_wide_price_table(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text(
        "date,GOOG,AAPL,MSFT\n"
        + "".join(f"2024-01-{d:02d},{100 + d}.5,{190 + d}.25,{400 - d}.0\n" for d in range(1, 29)),
        encoding="utf-8",
    )
    result = infer_declaration("prices", [path])
    assert result.dataset.primary_key == ["date"]
    assert result.notes == []


def test_a_unique_timestamp_column_is_a_key(tmp_path: Path) -> None:
    path = tmp_path / "ticks.csv"
    path.write_text(
        "ts,price\n" + "".join(f"2024-01-01T10:00:{s:02d}Z,{s}.5\n" for s in range(30)),
        encoding="utf-8",
    )
    assert infer_dataset("ticks", [path]).primary_key == ["ts"]


def test_when_no_key_is_proposed_the_notes_say_why(tmp_path: Path) -> None:
    path = tmp_path / "k.csv"
    path.write_text("a,b,c\n" + "".join(f"{i % 2},{i % 2},0.5\n" for i in range(10)), "utf-8")
    result = infer_declaration("k", [path])
    assert result.dataset.primary_key == []
    assert result.notes == [
        "No primary key proposed: no column, nor pair of columns among a, b, is unique and "
        "never empty over the 10 rows read. Add `primary_key:` by hand if the data has one."
    ]

    one = tmp_path / "one.csv"
    one.write_text("a,b\n1,2\n", encoding="utf-8")
    assert infer_declaration("one", [one]).notes == [
        "No primary key proposed: the sample has 1 row, which cannot show which columns are "
        "unique. Add `primary_key:` by hand if the data has one."
    ]
