"""Parquet: typed record batches, optionally cast to the declared types, with located errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from dynamic_assets.declarations.model import Column
from dynamic_assets.formats.errors import LoadError, column_difference

PARQUET_BATCH = 32_768

# Declared type -> (Arrow type on the wire, Postgres type of the typed staging column).
PARQUET_STAGING: dict[str, tuple[pa.DataType, str]] = {
    "string": (pa.string(), "text"),
    "integer": (pa.int64(), "bigint"),
    "float": (pa.float64(), "double precision"),
    "boolean": (pa.bool_(), "boolean"),
    "date": (pa.date32(), "date"),
    "timestamp": (pa.timestamp("us", tz="UTC"), "timestamp without time zone"),
    "json": (pa.string(), "jsonb"),
}


def declared_arrow_type(col: Column) -> tuple[pa.DataType, str]:
    """The Arrow type a declared column is read as, and the Postgres type it is staged as."""
    if col.vector_dim:
        return pa.list_(pa.float32()), "real[]"
    return PARQUET_STAGING[col.type]


def open_parquet(path: str, source: str | Path | BinaryIO) -> pq.ParquetFile:
    """The Parquet file at `source` (a local path or an open handle); `path` names it in errors."""
    try:
        return pq.ParquetFile(source)
    except Exception as exc:
        raise LoadError(
            path, f"not a readable Parquet file (truncated or corrupt?): {exc}"
        ) from None


def parquet_batches(
    path: str,
    pfile: pq.ParquetFile,
    columns: list[Column] | None = None,
    *,
    batch_size: int = PARQUET_BATCH,
) -> Iterator[pa.RecordBatch]:
    """The rows of `pfile` in batches: every column as stored, or the declared `columns` cast to
    their declared types (a file that lacks one or has another is refused)."""
    names = None
    if columns is not None:
        names = [c.name for c in columns]
        difference = column_difference(pfile.schema_arrow.names, names)
        if difference:
            raise LoadError(
                path, f"the Parquet schema does not match the declaration: {difference}"
            )
    start = 1
    try:
        for batch in pfile.iter_batches(batch_size=batch_size, columns=names):
            if columns is not None:
                arrays = [_cast_column(path, c, batch.column(c.name), start) for c in columns]
                batch = pa.RecordBatch.from_arrays(arrays, names=names)
            yield batch
            start += batch.num_rows
    except LoadError:
        raise
    except (OSError, pa.ArrowException) as exc:
        raise LoadError(
            path, f"cannot read Parquet data near row {start}: {exc}", row=start
        ) from None


def _cast_column(path: str, col: Column, arr: pa.Array, start: int) -> pa.Array:
    target = declared_arrow_type(col)[0]
    if arr.type == target:
        return arr
    if col.type == "json" and not (
        pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)
    ):
        return pa.array(
            [
                None if v is None else json.dumps(v, ensure_ascii=False, default=str)
                for v in arr.to_pylist()
            ],
            pa.string(),
        )
    try:
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        if (
            pa.types.is_timestamp(target)
            and pa.types.is_timestamp(arr.type)
            and arr.type.tz is None
        ):
            arr = arr.cast(pa.timestamp("us")).cast(target)
        return arr.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise LoadError(
            path,
            f"column {col.name}: cannot convert {arr.type} to the declared type ({exc})",
            row=start,
        ) from None
