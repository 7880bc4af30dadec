"""Columns read by the name the files give them (`source`): JSON keys and Parquet columns such
as `Adj. Close*` land in the declared columns, and pandas' index column is not read."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql

from dynamic_assets.datasets.curated import promote_version
from dynamic_assets.declarations.infer import infer_dataset
from dynamic_assets.declarations.model import Dataset
from dynamic_assets_tests.support.staging import stage_file, version_rows

SELECT = sql.SQL("name, adj_close, horsepower")


def test_json_keys_are_read_into_the_columns_they_are_the_source_of(db, tmp_path):
    ds = Dataset(
        name="cars_json",
        formats=["jsonl"],
        columns=[
            {"name": "name", "type": "string", "source": "Name", "nullable": False},
            {"name": "adj_close", "type": "float", "source": "Adj. Close*"},
            {"name": "horsepower", "type": "integer", "source": "Horsepower"},
        ],
        primary_key=["name"],
    )
    lines = [
        {"Name": "chevelle", "Adj. Close*": 101.5, "Horsepower": 130},
        # The file's own `adj_close` is not the declared source: the declared one is read.
        {"Name": "skylark", "Adj. Close*": 99.25, "Horsepower": 165, "adj_close": -1},
    ]
    data = "".join(json.dumps(r) + "\n" for r in lines)
    with db.connect(autocommit=True) as conn:
        stage_file(conn, ds, "v1", tmp_path, "cars.jsonl", data)
        result = promote_version(conn, ds, "v1")
        rows = version_rows(conn, "ai_curated", ds, "v1", SELECT, "name")
    assert result.rows == 2
    assert rows == [("chevelle", 101.5, 130), ("skylark", 99.25, 165)]


def test_parquet_written_by_pandas_declares_and_loads_without_its_index(db, tmp_path):
    frame = pd.DataFrame(
        {"Name": ["chevelle", "skylark"], "Adj. Close*": [101.5, 99.25], "Horsepower": [130, 165]},
        index=[4, 9],
    )
    table = pa.Table.from_pandas(frame)
    assert "__index_level_0__" in table.column_names
    sample = tmp_path / "sample.parquet"
    pq.write_table(table, sample)
    ds = infer_dataset("cars_pq", [sample])
    assert [(c.name, c.source) for c in ds.columns] == [
        ("name", "Name"),
        ("adj_close", "Adj. Close*"),
        ("horsepower", "Horsepower"),
    ]

    with db.connect(autocommit=True) as conn:
        stage_file(conn, ds, "v1", tmp_path, "cars.parquet", table)
        result = promote_version(conn, ds, "v1")
        rows = version_rows(conn, "ai_curated", ds, "v1", SELECT, "name")
    assert result.rows == 2
    assert rows == [("chevelle", 101.5, 130), ("skylark", 99.25, 165)]
