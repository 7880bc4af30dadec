"""One curated version as a Parquet file, streamed and byte-for-byte reproducible.

Rows leave Postgres through ADBC (binary COPY into Arrow record batches), in the order of their
origin `_source_file_id, _source_row`, and go into `pyarrow.parquet.ParquetWriter` in row groups
of a fixed row count, written to a spooled temporary file: memory stays bounded by one row group
and the spool's in-memory limit. A partition is written in that order when it is built, so the
rows are first read as they lie (a sequential scan, no sort: sorting 2,000,000 rows took the
server 1.5-2.5 s of a 4.6-5.6 s read) and checked to come in strictly increasing origin as they
arrive; at the first row that does not (rows updated since, a scan started mid-table), the file
is discarded and the rows are read again sorted by the server. Either way the file is the same. Writer options are fixed and the file holds no timestamp, so the
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
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from psycopg import sql

from dynamic_assets.db import Database
from dynamic_assets.db.connection import redact_url
from dynamic_assets.db.tables import CURATED_SCHEMA, ident
from dynamic_assets.declarations.model import Column
from dynamic_assets.formats import arrays
from dynamic_assets.formats.memory import bounded_copy_memory
from dynamic_assets.formats.threads import ahead
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


class ExportError(RuntimeError):
    """The version's rows could not be read from Postgres or written as Parquet: the server's,
    the driver's or Arrow's reason, on one line."""


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
    dataset: str,
    version: str,
    columns: list[Column],
    governance: Sequence[Column] = ROW_ORIGIN,
    *,
    ordered: bool = True,
) -> sql.Composed:
    """The version's rows, ordered by their origin unless `ordered` is false (then as they lie):
    vectors as `real[]`, json as text."""
    select = [
        sql.SQL("{}::real[] AS {}").format(sql.Identifier(c.name), sql.Identifier(c.name))
        if c.vector_dim
        else sql.SQL("{}::text AS {}").format(sql.Identifier(c.name), sql.Identifier(c.name))
        if c.type == "json"
        else sql.Identifier(c.name)
        for c in [*columns, *governance]
    ]
    # The version inlined as a literal: with a bind parameter the driver buffers the whole result.
    query = sql.SQL("SELECT {} FROM {} WHERE dataset_version = {}").format(
        sql.SQL(", ").join(select), ident(CURATED_SCHEMA, dataset), sql.Literal(version)
    )
    if not ordered:
        return query
    return sql.SQL("{} ORDER BY {}, {}").format(
        query, sql.Identifier("_source_file_id"), sql.Identifier("_source_row")
    )


class _OutOfOrder(Exception):
    """Rows read as they lie came later than a row of a later origin already written."""


# Rows held back, beyond the row group being written, to put in order rows that lie a little
# out of it (a row too long for the rest of a page is written on the next one, and shorter rows
# after it may still fill the first).
_WINDOW_ROWS = ROW_GROUP_ROWS


class _OriginOrder:
    """Puts rows read as they lie in strictly increasing `(_source_file_id, _source_row)`, a
    window at a time: each table given to `ordered` is sorted if it is not already, and must
    then come strictly after the last row of the one before (`_OutOfOrder` if not)."""

    def __init__(self) -> None:
        self._last: tuple[int, int] | None = None

    def ordered(self, table: pa.Table) -> pa.Table:
        if not table.num_rows:
            return table
        files, rows = (_integers(table.column(c.name)) for c in ROW_ORIGIN)
        if not _increasing(files, rows):
            table = table.take(
                pc.sort_indices(table, sort_keys=[(c.name, "ascending") for c in ROW_ORIGIN])
            )
            files, rows = (_integers(table.column(c.name)) for c in ROW_ORIGIN)
            if not _increasing(files, rows):  # an origin twice: no one order
                raise _OutOfOrder
        if self._last is not None and (int(files[0]), int(rows[0])) <= self._last:
            raise _OutOfOrder
        return table

    def written(self, table: pa.Table) -> None:
        """`table`, the first rows of the last ordered one, is written: the rows after come
        after its last row."""
        if table.num_rows:
            files, rows = (_integers(table.column(c.name)) for c in ROW_ORIGIN)
            self._last = (int(files[-1]), int(rows[-1]))


def _increasing(files: np.ndarray, rows: np.ndarray) -> bool:
    step = files[1:] - files[:-1]
    return not ((step < 0) | ((step == 0) & (rows[1:] <= rows[:-1]))).any()


def _integers(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """The values of a NOT NULL integer column as int64, read from its buffers (`to_numpy`
    makes pyarrow import pandas)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts = []
    for arr in chunks:
        if arr.null_count or not pa.types.is_integer(arr.type):
            raise _OutOfOrder  # not a row origin: read sorted
        kind = "i" if pa.types.is_signed_integer(arr.type) else "u"
        data = np.frombuffer(arr.buffers()[1], dtype=f"<{kind}{arr.type.bit_width // 8}")
        parts.append(data[arr.offset : arr.offset + len(arr)].astype(np.int64))
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def _row_groups(
    reader: Iterable[pa.RecordBatch], cols: list[Column], order: _OriginOrder | None = None
) -> Iterator[pa.Table]:
    """The reader's rows with their declared types, in tables of exactly ROW_GROUP_ROWS rows
    (the last one shorter), whatever the sizes of the batches the driver hands over; with
    `order`, put in origin order a window of rows at a time (`_OutOfOrder` when they cannot
    be)."""
    ahead = 0 if order is None else _WINDOW_ROWS
    pending: list[pa.Table] = []
    held = 0

    def group(table: pa.Table) -> pa.Table:
        if order is not None:
            order.written(table)
        return table

    for batch in reader:
        pending.append(typed_table(pa.Table.from_batches([batch]), cols))
        held += batch.num_rows
        while held >= ROW_GROUP_ROWS + ahead:
            table = pa.concat_tables(pending)
            if order is not None:
                table = order.ordered(table)
            yield group(table.slice(0, ROW_GROUP_ROWS))
            rest = table.slice(ROW_GROUP_ROWS)
            pending, held = ([rest] if rest.num_rows else []), rest.num_rows
    if held:
        table = pa.concat_tables(pending)
        if order is not None:
            table = order.ordered(table)
        for start in range(0, held, ROW_GROUP_ROWS):
            yield group(table.slice(start, ROW_GROUP_ROWS))


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
def _result(uri: str, query: str, settings: Sequence[str] = ()) -> Iterator[pa.RecordBatchReader]:
    """The rows of `query` as Arrow record batches, streamed by the ADBC PostgreSQL driver (binary
    COPY), after the statements `settings` on the same connection. Through the driver's own handles rather than its DB-API module, which imports
    `pyarrow.dataset` and, with it, pandas: about 40 MB of the process for nothing used here."""
    import adbc_driver_manager
    import adbc_driver_postgresql

    with (
        adbc_driver_postgresql.connect(uri) as database,
        adbc_driver_manager.AdbcConnection(database) as conn,
        adbc_driver_manager.AdbcStatement(conn) as statement,
    ):
        for setting in settings:
            statement.set_sql_query(setting)
            statement.execute_update()
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
    bounded_copy_memory()
    cols = [*columns, *governance]
    schema = parquet_schema(cols, dataset, version, fingerprint)
    with db.connect() as conn:
        as_they_lie, sorted_ = (
            export_query(dataset, version, columns, governance, ordered=ordered).as_string(conn)
            for ordered in (False, True)
        )
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        rows = None
        if all(c in governance for c in ROW_ORIGIN):
            try:
                rows = _write(spool, seal, schema, cols, as_they_lie, db.uri, _OriginOrder())
            except _OutOfOrder:
                spool.seek(0)
                spool.truncate()
        if rows is None:
            rows = _write(spool, seal, schema, cols, sorted_, db.uri, None)
        size = spool.tell()
        spool.seek(0)
        digest = hashlib.file_digest(spool, "sha256").hexdigest()
        spool.seek(0)
        yield Export(spool, digest, size, rows)


# A scan as the rows lie: from the table's first page (a synchronized scan may start where
# another one is), by one process (parallel workers interleave their rows).
_AS_THEY_LIE = ("SET synchronize_seqscans = off", "SET max_parallel_workers_per_gather = 0")


def _write(
    spool: IO[bytes],
    seal: Callable[[IO[bytes]], io.RawIOBase] | None,
    schema: pa.Schema,
    cols: list[Column],
    query: str,
    uri: str,
    order: _OriginOrder | None,
) -> int:
    """The rows of `query` written to `spool` as Parquet (through `seal`), checked to come in
    origin order when `order` is given; the row count."""
    import adbc_driver_manager

    rows = 0
    try:
        with (
            _result(uri, query, _AS_THEY_LIE if order is not None else ()) as reader,
            ahead(reader, depth=1, name="export-reader") as batches,
        ):
            sink: IO[bytes] | io.RawIOBase = spool if seal is None else seal(spool)
            try:
                with pq.ParquetWriter(sink, schema, **WRITER_OPTIONS) as writer:
                    for group in _row_groups(batches, cols, order):
                        writer.write_table(group.cast(schema), row_group_size=ROW_GROUP_ROWS)
                        rows += group.num_rows
            finally:
                # Closed here also when the rows are read again: a sealing writer left open
                # would write its last piece into the spool when it is collected, after the
                # second read's bytes.
                if sink is not spool:
                    sink.close()
    except (adbc_driver_manager.Error, pa.ArrowException) as exc:
        raise ExportError(_reason(exc, uri)) from None
    return rows


def _reason(exc: Exception, uri: str) -> str:
    """The driver's or Arrow's message on one line, without its status code, the driver's name
    or the connection string."""
    text = " ".join(str(exc).split())
    text = re.sub(r"^[A-Z_]+: ", "", text).replace("[libpq] ", "").replace("ERROR: ", "")
    return text.replace(uri, redact_url(uri))
