"""A trainer reads curated tables by dataset and version, with the declared types."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from dynamic_assets.read.curated import DatasetNotFound, read_curated
from dynamic_assets_tests.support.staging import curate_version


@pytest.fixture
def curated(db, drive, decls):
    for name, version in [
        ("market", "2024-06-01"),
        ("market", "2024-07-01"),
        ("corpus", "v1.1"),
        ("embeddings", "v2.3"),
    ]:
        curate_version(db, drive, decls, name, version)
    return db


def test_latest_version_with_declared_types(curated):
    df = read_curated("market", database=curated)
    assert len(df) == 691  # 2024-07-01 is the latest
    assert df.dtypes.to_dict() == {
        "date": np.dtype("datetime64[s]"),
        "symbol": pd.StringDtype(),
        "exchange": pd.StringDtype(),
        "open": np.dtype("float64"),
        "high": np.dtype("float64"),
        "low": np.dtype("float64"),
        "close": np.dtype("float64"),
        "volume": pd.Int64Dtype(),
        "note": pd.StringDtype(),
    }
    assert df["date"].min() >= pd.Timestamp("2024-05-01")
    assert (df["close"] > 0).all()


def test_version_and_columns(curated):
    df = read_curated(
        "market", version="2024-06-01", columns=["date", "symbol", "close"], database=curated
    )
    assert list(df.columns) == ["date", "symbol", "close"]
    assert len(df) == 560
    assert not df.duplicated(["date", "symbol"]).any()


def test_arrow_json_vectors_and_timestamps(curated):
    table = read_curated("embeddings", as_arrow=True, database=curated)
    assert isinstance(table, pa.Table)
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 16)
    assert table.schema.field("created_at").type == pa.timestamp("us", tz="UTC")
    df = read_curated("embeddings", database=curated)
    first = df["embedding"].iloc[0]
    assert first.dtype == np.float32 and first.shape == (16,)
    assert abs(float(np.linalg.norm(first)) - 1.0) < 1e-3

    corpus = read_curated("corpus", database=curated)
    assert len(corpus) == 270
    assert isinstance(corpus["meta"].dropna().iloc[0], dict)
    assert str(corpus["published_at"].dtype) == "datetime64[us, UTC]"


def test_unknown_version_and_column_are_named(curated):
    with pytest.raises(
        DatasetNotFound, match="no curated version '1999-01-01'.*2024-06-01, 2024-07-01"
    ):
        read_curated("market", version="1999-01-01", database=curated)
    with pytest.raises(KeyError, match="no column"):
        read_curated("market", columns=["price"], database=curated)
    with pytest.raises(DatasetNotFound, match="no curated version"):
        read_curated("unknown_ds", database=curated)
