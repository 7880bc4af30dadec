"""One curated version as a Parquet file, streamed and byte-for-byte reproducible.

Rows leave Postgres through ADBC (binary COPY into Arrow record batches), ordered by
`_source_file_id, _source_row`, and go into `pyarrow.parquet.ParquetWriter` in row groups of a
fixed row count, written to a spooled temporary file: memory stays bounded by one row group and
the spool's in-memory limit. Writer options are fixed and the file holds no timestamp, so the
same curated rows always give the same bytes (with the same pyarrow version, whose name the
Parquet footer records).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql

from dynamic_assets.db import Database
from dynamic_assets.declarations.model import Column
from dynamic_assets.read.frames import typed_table

ROW_GROUP_ROWS = 65_536
SPOOL_BYTES = 32 * 1024 * 1024
# The governance columns kept beside the declared ones (not validated as declared names: they
# start with '_', which declarations may not).
GOVERNANCE = [
    Column.model_construct(name="_source_file_id", type="integer", nullable=False),
    Column.model_construct(name="_source_row", type="integer", nullable=False),
]
WRITER_OPTIONS = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": False,
    "write_statistics": True,
    "version": "2.6",
    "data_page_version": "1.0",
}
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"


@dataclass
class Export:
    """A version's Parquet bytes in a temporary file, with their SHA-256, size and row count."""

    file: IO[bytes]
    sha256: str
    size_bytes: int
    rows: int


def export_query(dataset: str, version: str, columns: list[Column]) -> sql.Composed:
    select = [
        sql.SQL("{}::real[] AS {}").format(sql.Identifier(c.name), sql.Identifier(c.name))
        if c.vector_dim
        else sql.SQL("{}::text AS {}").format(sql.Identifier(c.name), sql.Identifier(c.name))
        if c.type == "json"
        else sql.Identifier(c.name)
        for c in [*columns, *GOVERNANCE]
    ]
    # The version inlined as a literal: with a bind parameter the driver buffers the whole result.
    return sql.SQL("SELECT {} FROM {} WHERE dataset_version = {} ORDER BY {}, {}").format(
        sql.SQL(", ").join(select),
        sql.Identifier("ai_curated", dataset),
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
    empty = typed_table(
        pa.table({c.name: pa.array([], _arrow_type(c)) for c in cols}),
        cols,
    )
    meta = {"dynamic_assets.dataset": dataset, "dynamic_assets.version": version}
    if fingerprint:
        meta["dynamic_assets.fingerprint"] = fingerprint
    return empty.schema.with_metadata(meta)


def _arrow_type(c: Column) -> pa.DataType:
    if c.vector_dim:
        return pa.list_(pa.float32())
    return {
        "string": pa.string(),
        "integer": pa.int64(),
        "float": pa.float64(),
        "boolean": pa.bool_(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "json": pa.string(),
    }[c.type]


@contextmanager
def export_version(
    db: Database,
    dataset: str,
    version: str,
    columns: list[Column],
    *,
    fingerprint: str | None = None,
) -> Iterator[Export]:
    """The curated version as Parquet in a spooled temporary file (closed on exit): the declared
    columns with their declared types, then `_source_file_id` and `_source_row`."""
    import adbc_driver_postgresql.dbapi as adbc

    cols = [*columns, *GOVERNANCE]
    schema = parquet_schema(cols, dataset, version, fingerprint)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        rows = 0
        with db.connect() as conn:
            text = export_query(dataset, version, columns).as_string(conn)
        with adbc.connect(db.uri) as aconn:
            cur = aconn.cursor()
            try:
                cur.execute(text)
                reader = cur.fetch_record_batch()
                with pq.ParquetWriter(spool, schema, **WRITER_OPTIONS) as writer:
                    for group in _row_groups(reader, cols):
                        writer.write_table(group.cast(schema), row_group_size=ROW_GROUP_ROWS)
                        rows += group.num_rows
            finally:
                cur.close()
        size = spool.tell()
        spool.seek(0)
        digest = hashlib.file_digest(spool, "sha256").hexdigest()
        spool.seek(0)
        yield Export(spool, digest, size, rows)
