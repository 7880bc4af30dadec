"""One curated version as a Parquet file, streamed and byte-for-byte reproducible.

Rows leave Postgres through ADBC (binary COPY into Arrow record batches), ordered by
`_source_file_id, _source_row`, and go into `pyarrow.parquet.ParquetWriter` in row groups of a
fixed row count, written to a spooled temporary file: memory stays bounded by one row group and
the spool's in-memory limit. Writer options are fixed and the file holds no timestamp, so the
same curated rows always give the same bytes (with the same pyarrow version, whose name the
Parquet footer records).

The file holds the declared columns with their declared types (json as its text, vectors as
fixed-size float32 lists), then the governance columns the caller asks for: a mirror carries the
rows' origin (`ROW_ORIGIN`), the archive tier all of them (`GOVERNANCE`) so that a restore gives
back the same partition.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql

from dynamic_assets.db import Database
from dynamic_assets.db.tables import CURATED_SCHEMA, ident
from dynamic_assets.declarations.model import Column
from dynamic_assets.formats import arrays
from dynamic_assets.read.frames import typed_table

ROW_GROUP_ROWS = 65_536
# A file up to this size stays in memory, a larger one goes to a temporary file on disk: a larger
# in-memory spool is held whole, and copied once more when it spills (32 MiB peaked 28 MB higher
# when archiving 2,000,000 rows).
SPOOL_BYTES = 4 * 1024 * 1024
# The governance columns of a curated row (not validated as declared names: they start with '_',
# which declarations may not). The first two say where each row came from and order the file.
GOVERNANCE = [
    Column.model_construct(name="_source_file_id", type="integer", nullable=False),
    Column.model_construct(name="_source_row", type="integer", nullable=False),
    Column.model_construct(name="_schema_version", type="integer", nullable=False),
    Column.model_construct(name="_retain_until", type="date", nullable=True),
    Column.model_construct(name="_curated_at", type="timestamp", nullable=False),
]
ROW_ORIGIN = GOVERNANCE[:2]
WRITER_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": False,
    "write_statistics": True,
    "version": "2.6",
    "data_page_version": "1.0",
}
ARROW_TYPES = {
    "string": pa.string(),
    "integer": pa.int64(),
    "float": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "json": pa.string(),
}


@dataclass
class Export:
    """A version's Parquet bytes in a temporary file, with their SHA-256, size and row count."""

    file: IO[bytes]
    sha256: str
    size_bytes: int
    rows: int


def arrow_type(c: Column) -> pa.DataType:
    """The Arrow type a column travels in: its declared type, json as text, a vector as a
    float32 list (of any length: the file's schema fixes the length)."""
    return pa.list_(pa.float32()) if c.vector_dim else ARROW_TYPES[c.type]


def export_query(
    dataset: str, version: str, columns: list[Column], governance: Sequence[Column] = ROW_ORIGIN
) -> sql.Composed:
    """The version's rows, ordered by their origin: vectors as `real[]`, json as text."""
    select = [
        sql.SQL("{}::real[] AS {}").format(sql.Identifier(c.name), sql.Identifier(c.name))
        if c.vector_dim
        else sql.SQL("{}::text AS {}").format(sql.Identifier(c.name), sql.Identifier(c.name))
        if c.type == "json"
        else sql.Identifier(c.name)
        for c in [*columns, *governance]
    ]
    # The version inlined as a literal: with a bind parameter the driver buffers the whole result.
    return sql.SQL("SELECT {} FROM {} WHERE dataset_version = {} ORDER BY {}, {}").format(
        sql.SQL(", ").join(select),
        ident(CURATED_SCHEMA, dataset),
        sql.Literal(version),
        sql.Identifier("_source_file_id"),
        sql.Identifier("_source_row"),
    )


def _row_groups(reader: pa.RecordBatchReader, cols: list[Column]) -> Iterator[pa.Table]:
    """The reader's rows with their declared types, in tables of exactly ROW_GROUP_ROWS rows
    (the last one shorter), whatever the sizes of the batches the driver hands over."""
    pending: list[pa.Table] = []
    held = 0
    for batch in reader:
        pending.append(typed_table(pa.Table.from_batches([batch]), cols))
        held += batch.num_rows
        while held >= ROW_GROUP_ROWS:
            table = pa.concat_tables(pending)
            yield table.slice(0, ROW_GROUP_ROWS)
            rest = table.slice(ROW_GROUP_ROWS)
            pending, held = ([rest] if rest.num_rows else []), rest.num_rows
    if held:
        yield pa.concat_tables(pending)


def parquet_schema(
    cols: list[Column], dataset: str, version: str, fingerprint: str | None
) -> pa.Schema:
    """The file's schema: `cols` with their declared types, the dataset and version (and the
    fingerprint when given) as schema metadata."""
    # Empty columns from `formats.arrays`: `pa.array([])` and `Schema.empty_table` make pyarrow
    # import pandas (about 40 MB of the process).
    empty = typed_table(
        pa.Table.from_arrays(
            [arrays.empty(arrow_type(c)) for c in cols], names=[c.name for c in cols]
        ),
        cols,
    )
    # A vector is written as a float32 list, its length in the field's `declared_type`: a
    # fixed-size list holding a NULL is written by pyarrow but not read back by it.
    fields = [
        f.with_type(pa.list_(f.type.value_type)) if pa.types.is_fixed_size_list(f.type) else f
        for f in empty.schema
    ]
    meta = {"dynamic_assets.dataset": dataset, "dynamic_assets.version": version}
    if fingerprint:
        meta["dynamic_assets.fingerprint"] = fingerprint
    return pa.schema(fields, metadata=meta)


@contextmanager
def _result(uri: str, query: str) -> Iterator[pa.RecordBatchReader]:
    """The rows of `query` as Arrow record batches, streamed by the ADBC PostgreSQL driver (binary
    COPY). Through the driver's own handles rather than its DB-API module, which imports
    `pyarrow.dataset` and, with it, pandas: about 40 MB of the process for nothing used here."""
    import adbc_driver_manager
    import adbc_driver_postgresql

    with (
        adbc_driver_postgresql.connect(uri) as database,
        adbc_driver_manager.AdbcConnection(database) as conn,
        adbc_driver_manager.AdbcStatement(conn) as statement,
    ):
        statement.set_sql_query(query)
        stream, _rows = statement.execute_query()
        with pa.RecordBatchReader.from_stream(stream) as reader:
            yield reader


@contextmanager
def export_version(
    db: Database,
    dataset: str,
    version: str,
    columns: list[Column],
    *,
    governance: Sequence[Column] = ROW_ORIGIN,
    fingerprint: str | None = None,
    seal: Callable[[IO[bytes]], io.RawIOBase] | None = None,
) -> Iterator[Export]:
    """The curated version as Parquet in a spooled temporary file (closed on exit, positioned at
    its start): the declared columns with their declared types, then the `governance` columns.
    With `seal`, the Parquet bytes are written through `seal(file)` (closed when the Parquet
    file is complete) and the file, its SHA-256 and size are what `seal` wrote: an encrypting
    writer keeps the plaintext off the spool, which may spill to local disk."""
    cols = [*columns, *governance]
    schema = parquet_schema(cols, dataset, version, fingerprint)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        rows = 0
        with db.connect() as conn:
            text = export_query(dataset, version, columns, governance).as_string(conn)
        with _result(db.uri, text) as reader:
            sink: IO[bytes] | io.RawIOBase = spool if seal is None else seal(spool)
            with pq.ParquetWriter(sink, schema, **WRITER_OPTIONS) as writer:
                for group in _row_groups(reader, cols):
                    writer.write_table(group.cast(schema), row_group_size=ROW_GROUP_ROWS)
                    rows += group.num_rows
            if sink is not spool:
                sink.close()
        size = spool.tell()
        spool.seek(0)
        digest = hashlib.file_digest(spool, "sha256").hexdigest()
        spool.seek(0)
        yield Export(spool, digest, size, rows)
