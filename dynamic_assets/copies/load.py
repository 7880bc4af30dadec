"""A Parquet copy of a curated version loaded back into Postgres and checked against the
version's fingerprint record.

`load_copy` puts the file's rows into `ai_curated.<table>`, a table like the dataset's parent:
by binary COPY (pgpq) straight into it when each column's Postgres type is one pgpq writes, else
into a temporary landing table of the types the Arrow columns travel in, then one INSERT ...
SELECT with the casts to the declared types. `check_content` compares the rows of
such a table with the record (row count and content digest under fingerprint spec v1, computed
in Postgres from the same canonical row text the fingerprint was).

`check_copy` checks a file without loading it: it reads the file once and computes the row
count and content digest from its Arrow batches (`provenance.arrow_digest`). A file with json
columns holds their text as Postgres printed it; should such a file not match (its json text
written otherwise), it is loaded into an UNLOGGED table in a transaction that is rolled back
and digested by Postgres, which normalizes the json first: that result stands.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from pgpq import ArrowToPostgresBinaryEncoder
from psycopg import sql

from dynamic_assets.copies.export import GOVERNANCE, arrow_type
from dynamic_assets.db import Database
from dynamic_assets.db.tables import CURATED_SCHEMA, ident, table_columns
from dynamic_assets.declarations.model import Column
from dynamic_assets.declarations.names import table_suffix
from dynamic_assets.formats.memory import bounded_copy_memory
from dynamic_assets.provenance.arrow_digest import ArrowDigest, ArrowDigestError
from dynamic_assets.provenance.fingerprint import content_digest

# The Arrow type whose pgpq binary encoding is each Postgres type a file is loaded into directly.
_DIRECT: dict[str, pa.DataType] = {
    "bigint": pa.int64(),
    "integer": pa.int32(),
    "smallint": pa.int16(),
    "double precision": pa.float64(),
    "real": pa.float32(),
    "boolean": pa.bool_(),
    "text": pa.string(),
    "date": pa.date32(),
    "timestamp with time zone": pa.timestamp("us", tz="UTC"),
    "timestamp without time zone": pa.timestamp("us"),
}

# Rows digested per batch when a copy is checked: the batch's canonical row texts are held at
# once, and up to `arrow_digest._AHEAD` more batches' built ahead of the hashing (65,536 rows a
# batch peaked 33 MB higher on a 2,000,000-row file, one batch at a time).
CHECK_BATCH_ROWS = 16_384
# Rows encoded per binary COPY message: a quarter of a row group, so that the decoded batch, its
# cast copy and its encoded bytes stay small beside the file being read.
LOAD_BATCH_ROWS = 16_384


class CopyError(ValueError):
    """The Parquet copy cannot be loaded; the message completes "the file ..."."""


@dataclass(frozen=True)
class ContentCheck:
    """The rows and content digest of a loaded copy beside the ones its fingerprint records."""

    rows: int
    digest: str
    want_rows: int
    want_digest: str

    @property
    def ok(self) -> bool:
        return (self.rows, self.digest) == (self.want_rows, self.want_digest)


def scratch_table(dataset: str, version: str) -> str:
    """A fresh name in `ai_curated` for a copy of the version loaded beside its partition."""
    return f"{dataset}__a_{table_suffix(version, uuid.uuid4().hex)}"


def _landing_type(c: Column) -> str:
    """The Postgres type pgpq's binary COPY writes for the column's Arrow type."""
    return "real[]" if c.vector_dim else "text" if c.type == "json" else c.pg_type


def load_copy(
    conn: psycopg.Connection,
    dataset: str,
    version: str,
    columns: list[Column],
    source: IO[bytes],
    table: str,
    *,
    governance: Sequence[Column] = GOVERNANCE,
    unlogged: bool = False,
) -> int:
    """Inside the caller's transaction: `ai_curated.<table>`, a table like the dataset's parent
    (UNLOGGED with `unlogged`: for a copy that is only checked, never kept), holding the rows of
    the Parquet file in `source` (its declared `columns`, then the `governance` columns it
    carries; the parent's other governance columns are left empty). Rows whose Arrow types are
    the declared Postgres types go into the table by binary COPY directly; a file with json or
    vector columns goes through a temporary landing table and one INSERT ... SELECT with the
    casts. Returns the rows loaded; raises CopyError when the file cannot be read whole."""
    try:
        parquet = pq.ParquetFile(source)
    except (pa.ArrowException, OSError) as exc:
        raise CopyError(f"is not readable Parquet: {exc}") from None
    cols = [*columns, *governance]
    names = [c.name for c in cols]
    if parquet.schema_arrow.names != names:
        raise CopyError(f"has the columns {parquet.schema_arrow.names}, not the version's {names}")
    target = ident(CURATED_SCHEMA, table)
    conn.execute(
        sql.SQL("CREATE {}TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(
            sql.SQL("UNLOGGED " if unlogged else ""), target, ident(CURATED_SCHEMA, dataset)
        )
    )
    conn.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(target))
    for c in GOVERNANCE:
        if c.name not in names:
            conn.execute(
                sql.SQL("ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL").format(
                    target, sql.Identifier(c.name)
                )
            )
    found = table_columns(conn, CURATED_SCHEMA, table)
    direct = [_DIRECT.get(found.get(c.name, "")) for c in cols]
    if any(c.vector_dim or c.type == "json" for c in cols) or None in direct:
        landing = sql.Identifier(f"{table}_l")
        conn.execute(
            sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(
                landing,
                sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(_landing_type(c)))
                    for c in cols
                ),
            )
        )
        _copy_in(conn, parquet, pa.schema([pa.field(c.name, arrow_type(c)) for c in cols]), landing)
        cur = conn.execute(
            sql.SQL("INSERT INTO {} (dataset_version, {}) SELECT {}, {} FROM {}").format(
                target,
                sql.SQL(", ").join(sql.Identifier(n) for n in names),
                sql.Literal(version),
                sql.SQL(", ").join(
                    sql.SQL("{}::{}").format(sql.Identifier(c.name), sql.SQL(c.pg_type))
                    for c in cols
                ),
                landing,
            )
        )
        return cur.rowcount
    version_column = sql.Identifier("dataset_version")
    conn.execute(
        sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {}").format(
            target, version_column, sql.Literal(version)
        )
    )
    wire = pa.schema([pa.field(c.name, t) for c, t in zip(cols, direct, strict=True)])
    rows = _copy_in(
        conn,
        parquet,
        wire,
        sql.SQL("{} ({})").format(target, sql.SQL(", ").join(sql.Identifier(n) for n in names)),
    )
    conn.execute(
        sql.SQL("ALTER TABLE {} ALTER COLUMN {} DROP DEFAULT").format(target, version_column)
    )
    return rows


def _copy_in(
    conn: psycopg.Connection, parquet: pq.ParquetFile, wire: pa.Schema, into: sql.Composable
) -> int:
    """The file's rows cast to `wire` and sent by binary COPY (pgpq) into `into` (a table and
    column list of the Postgres types pgpq writes for `wire`); returns the rows sent."""
    encoder = ArrowToPostgresBinaryEncoder(wire)
    rows = 0
    try:
        with (
            conn.cursor() as cur,
            cur.copy(sql.SQL("COPY {} FROM STDIN WITH (FORMAT binary)").format(into)) as copy,
        ):
            copy.write(encoder.write_header())
            for batch in parquet.iter_batches(batch_size=LOAD_BATCH_ROWS):
                copy.write(
                    encoder.write_batch(
                        pa.Table.from_batches([batch]).cast(wire).combine_chunks().to_batches()[0]
                    )
                )
                rows += batch.num_rows
            copy.write(encoder.finish())
    except (pa.ArrowException, OSError) as exc:
        raise CopyError(f"cannot be read whole: {exc}") from None
    return rows


def check_content(
    conn: psycopg.Connection, dataset: str, version: str, record: dict[str, Any], table: str
) -> ContentCheck:
    """The rows of the version in `ai_curated.<table>` against the fingerprint `record`: row
    count and content digest. Raises FingerprintError when the table cannot be digested."""
    got = content_digest(conn, dataset, version, record["schema"]["columns"], table=table)
    want = record["rows"]
    return ContentCheck(got.rows, got.digest, int(want["count"]), want["content_digest"])


def check_copy(
    db: Database,
    dataset: str,
    version: str,
    columns: list[Column],
    record: dict[str, Any],
    source: IO[bytes],
    *,
    governance: Sequence[Column] = GOVERNANCE,
) -> ContentCheck:
    """The Parquet copy in `source` checked against the version's fingerprint `record`: row
    count and content digest computed from the file, read once; nothing is loaded into `db`
    unless a file with json columns does not match (see the module). Raises CopyError when the
    file cannot be read whole or does not hold the version's columns."""
    digested = digest_copy(columns, record, source, governance=governance)
    want = record["rows"]
    check = ContentCheck(
        digested.rows, digested.hexdigest(), int(want["count"]), want["content_digest"]
    )
    if check.ok or not any(c["type"] == "json" for c in record["schema"]["columns"]):
        return check
    source.seek(0)
    return _check_loaded(db, dataset, version, columns, record, source, governance=governance)


def digest_copy(
    columns: list[Column],
    record: dict[str, Any],
    source: IO[bytes],
    *,
    governance: Sequence[Column] = GOVERNANCE,
) -> ArrowDigest:
    """The row count and content digest (over the record's schema) of the Parquet file in
    `source`, every column of which is read and decoded."""
    bounded_copy_memory()
    try:
        # Each column chunk read when it is decoded: pre-buffering would read up to 32 MiB of
        # the file at once, ahead of the rows digested.
        parquet = pq.ParquetFile(source, pre_buffer=False)
    except (pa.ArrowException, OSError) as exc:
        raise CopyError(f"is not readable Parquet: {exc}") from None
    names = [c.name for c in [*columns, *governance]]
    if parquet.schema_arrow.names != names:
        raise CopyError(f"has the columns {parquet.schema_arrow.names}, not the version's {names}")
    digest = ArrowDigest(record["schema"]["columns"], parquet.metadata.num_rows)
    try:
        digest.add_all(parquet.iter_batches(batch_size=CHECK_BATCH_ROWS, use_threads=False))
    except (pa.ArrowException, OSError) as exc:
        raise CopyError(f"cannot be read whole: {exc}") from None
    except (ArrowDigestError, KeyError) as exc:
        raise CopyError(f"does not hold the version's columns as declared: {exc}") from None
    return digest


def _check_loaded(
    db: Database,
    dataset: str,
    version: str,
    columns: list[Column],
    record: dict[str, Any],
    source: IO[bytes],
    *,
    governance: Sequence[Column] = GOVERNANCE,
) -> ContentCheck:
    """The Parquet copy in `source` loaded beside the version's partition and checked against
    its fingerprint `record` by Postgres, in a transaction that is rolled back."""
    table = scratch_table(dataset, version)
    with db.connect(autocommit=True) as conn, conn.transaction(force_rollback=True):
        load_copy(
            conn, dataset, version, columns, source, table, governance=governance, unlogged=True
        )
        return check_content(conn, dataset, version, record, table)
