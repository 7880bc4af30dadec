"""Parquet: typed record batches, optionally cast to the declared types, with located errors.

Parquet is read by random access (the footer first, then column chunks); a file from the drive is
read once, in order, into a temporary copy while it is hashed (`spool_parquet`), and parsed from
that copy: one download from OneDrive, and the digest covers every byte.

Arrow's messages may quote a value (a string that does not parse as the declared type): for a
sensitive dataset they are withheld, the file, the row, the column and the reason remain."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

from dynamic_assets.declarations.model import Column
from dynamic_assets.declarations.names import WRITER_COLUMNS
from dynamic_assets.formats.arrays import strings
from dynamic_assets.formats.errors import LoadError, column_difference
from dynamic_assets.formats.hashing import ByteSource, HashingReader

PARQUET_BATCH = 32_768
SPOOL_IN_MEMORY = 8 << 20  # a copy up to this size stays in memory, a larger one goes to disk
SPOOL_CHUNK = 1 << 20

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


def spool_parquet(
    path: str, stream: ByteSource, *, sensitive: bool = False
) -> tuple[IO[bytes], str, int]:
    """Read `stream` (a file's bytes from the drive) once, in order, into a seekable temporary
    copy, hashing it on the way: the copy at its start, the SHA-256 (hex) and the size. The
    stream is closed; the caller closes the copy. `path` names the file in errors."""
    copy = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - returned open
    reader = HashingReader(stream)
    try:
        shutil.copyfileobj(reader, copy, SPOOL_CHUNK)
    except LoadError:  # the source's own refusal (a download that does not match the drive's hash)
        copy.close()
        raise
    except OSError as exc:
        copy.close()
        raise LoadError(
            path, "cannot read the file", detail=str(exc), sensitive=sensitive
        ) from None
    finally:
        reader.close()
    copy.seek(0)
    return copy, reader.hexdigest(), reader.bytes_read


def open_parquet(
    path: str, source: str | Path | IO[bytes], *, sensitive: bool = False
) -> pq.ParquetFile:
    """The Parquet file at `source` (a local path or an open handle); `path` names it in errors."""
    try:
        return pq.ParquetFile(source)
    except LoadError:  # the source's own refusal (a download that does not match the drive's hash)
        raise
    except Exception as exc:
        raise LoadError(
            path,
            "not a readable Parquet file, truncated or corrupt",
            detail=str(exc),
            sensitive=sensitive,
        ) from None


def parquet_batches(
    path: str,
    pfile: pq.ParquetFile,
    columns: list[Column] | None = None,
    *,
    batch_size: int = PARQUET_BATCH,
    sensitive: bool = False,
) -> Iterator[pa.RecordBatch]:
    """The rows of `pfile` in batches: every column as stored, or the declared `columns`, read
    by their `source` name and named by their declared name, cast to their declared types (a
    file that lacks one or has another is refused; pandas' index column is not read). Column
    names are the file's schema, never data, so they are named even for a `sensitive` dataset."""
    names = headers = None
    if columns is not None:
        names = [c.name for c in columns]
        headers = [c.header for c in columns]
        present = [n for n in pfile.schema_arrow.names if not WRITER_COLUMNS.fullmatch(n)]
        difference = column_difference(present, headers)
        if difference:
            raise LoadError(
                path,
                f"the Parquet schema does not match the declaration: {difference}",
                sensitive=sensitive,
            )
    start = 1
    try:
        for batch in pfile.iter_batches(batch_size=batch_size, columns=headers):
            if columns is not None:
                arrays = [
                    _cast_column(path, c, batch.column(c.header), start, sensitive) for c in columns
                ]
                batch = pa.RecordBatch.from_arrays(arrays, names=names)
            yield batch
            start += batch.num_rows
    except LoadError:
        raise
    except (OSError, pa.ArrowException) as exc:
        raise LoadError(
            path,
            f"cannot read Parquet data near row {start}",
            row=start,
            detail=str(exc),
            sensitive=sensitive,
        ) from None


def _cast_column(path: str, col: Column, arr: pa.Array, start: int, sensitive: bool) -> pa.Array:
    target = declared_arrow_type(col)[0]
    if arr.type == target:
        return arr
    if col.type == "json" and not (
        pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)
    ):
        return strings(
            [
                None if v is None else json.dumps(v, ensure_ascii=False, default=str)
                for v in arr.to_pylist()
            ]
        )
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    try:
        return _convert(arr, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise LoadError(
            path,
            f"column {col.name}: cannot convert {arr.type} to the declared type",
            row=start + _first_unconvertible(arr, target),
            detail=str(exc),
            sensitive=sensitive,
        ) from None


def _convert(arr: pa.Array, target: pa.DataType) -> pa.Array:
    if pa.types.is_timestamp(target) and pa.types.is_timestamp(arr.type) and arr.type.tz is None:
        arr = arr.cast(pa.timestamp("us"))
    return arr.cast(target)


def _first_unconvertible(arr: pa.Array, target: pa.DataType) -> int:
    """The index of the first value of `arr` that does not convert (error path only: bisects)."""
    lo, hi = 0, len(arr)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            _convert(arr.slice(lo, mid - lo), target)
            lo = mid
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            hi = mid
    return lo
