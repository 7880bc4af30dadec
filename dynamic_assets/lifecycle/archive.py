"""The archive tier: a curated version as one Parquet file in the drive.

`archive_version` streams the version's partition out of Postgres through ADBC (binary COPY into
Arrow record batches) into `pyarrow.parquet.ParquetWriter`, writing to a spooled temporary file
(memory bounded by one batch and the spool's in-memory limit), uploads it to
`<archive folder>/<dataset>/<version>/dynamic-assets_dataset_<dataset>-<version>_<fp12>_archive.parquet`
(through the drive's upload session when it has one), then verifies the copy before anything is
dropped: the file is read back from the drive, its SHA-256 compared with the one written, its
rows loaded into a table beside the partition and their row count and content digest
(`provenance.fingerprint.content_digest`) compared with the version's fingerprint record. Only
then is the partition dropped, in one transaction with the registry row's `tier` and
`platform_locations.archive` (path, sha256, size, rows). A process killed at any moment leaves the
version in core or in the archive, never in neither; the next pass starts over.

`read_archived` reads an archived version from the drive without restoring it (the file's SHA-256
checked against the one recorded when it was archived); `restore_version` loads it back into
core, verified against the fingerprint like an archive.
"""

from __future__ import annotations

import hashlib
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from pgpq import ArrowToPostgresBinaryEncoder
from psycopg import sql
from psycopg.types.json import Jsonb

from dynamic_assets.db import Database
from dynamic_assets.db.tables import (
    CURATED_SCHEMA,
    dataset_lock,
    ident,
    partition_exists,
    partition_name,
    swap_partition,
    version_lock,
)
from dynamic_assets.declarations.model import HNSW_MAX_DIM, Column
from dynamic_assets.declarations.names import table_suffix
from dynamic_assets.drive.base import Drive
from dynamic_assets.provenance.fingerprint import FingerprintError, content_digest

SPOOL_BYTES = 32 * 1024 * 1024
CHUNK = 1024 * 1024
ROW_GROUP_ROWS = 65_536
# The governance columns of a curated row, archived with it so that a restore gives back the
# same partition: name, Arrow type, Postgres type.
GOVERNANCE: list[tuple[str, pa.DataType, str]] = [
    ("_source_file_id", pa.int64(), "bigint"),
    ("_source_row", pa.int64(), "bigint"),
    ("_schema_version", pa.int32(), "integer"),
    ("_retain_until", pa.date32(), "date"),
    ("_curated_at", pa.timestamp("us", tz="UTC"), "timestamptz"),
]
WRITER_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "write_statistics": True,
    "version": "2.6",
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
# How each declared type travels into the table a verification or restore loads: the Postgres
# type pgpq's binary COPY writes, and the cast to the declared type.
WIRE_TYPES = {
    "string": "text",
    "integer": "bigint",
    "float": "double precision",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamptz",
    "json": "text",
}

Step = Callable[[str], None]


class ArchiveError(RuntimeError):
    """A version could not be archived, read from the archive or restored; the message names the
    version and the tier, and nothing was dropped anywhere."""


@dataclass(frozen=True)
class Exported:
    """What `export_version` wrote: the file's SHA-256, its size in bytes and its rows."""

    sha256: str
    size_bytes: int
    rows: int


@dataclass(frozen=True)
class Registered:
    """A curated version's registry row: its tier, fingerprint, record, locations and columns."""

    dataset: str
    version: str
    tier: str
    fingerprint: str | None
    record: dict[str, Any] | None
    locations: dict[str, Any]
    columns: list[Column]
    sensitive: bool

    @property
    def where(self) -> str:
        return f"{self.dataset} {self.version}"

    @property
    def archive(self) -> dict[str, Any] | None:
        return self.locations.get("archive")


def registered(conn: psycopg.Connection, dataset: str, version: str) -> Registered:
    row = conn.execute(
        "SELECT tier, fingerprint, fingerprint_record, platform_locations, schema, sensitivity "
        "FROM public.datasets WHERE name = %s AND version = %s AND status = 'curated'",
        (dataset, version),
    ).fetchone()
    if row is None:
        raise ArchiveError(f"{dataset} {version} is not a curated version")
    tier, fingerprint, record, locations, schema, sensitivity = row
    return Registered(
        dataset,
        version,
        tier,
        fingerprint,
        record,
        dict(locations or {}),
        [Column.model_validate(c) for c in (schema or [])],
        sensitivity == "sensitive",
    )


def archive_name(dataset: str, version: str, fingerprint: str) -> str:
    return f"dynamic-assets_dataset_{dataset}-{version}_{fingerprint[:12]}_archive.parquet"


def archive_path(folder: str, dataset: str, version: str, fingerprint: str) -> str:
    return f"{folder}/{dataset}/{version}/{archive_name(dataset, version, fingerprint)}"


def arrow_schema(columns: list[Column]) -> pa.Schema:
    """The archive's columns: the declared ones with their declared types (vectors as
    fixed-size float32 lists, json as its text), then the governance columns."""
    fields = [
        pa.field(
            c.name,
            pa.list_(pa.float32(), c.vector_dim) if c.vector_dim else ARROW_TYPES[c.type],
            nullable=bool(c.nullable),
        )
        for c in columns
    ]
    fields += [pa.field(name, type_) for name, type_, _ in GOVERNANCE]
    return pa.schema(fields)


def _export_query(dataset: str, version: str, columns: list[Column]) -> sql.Composed:
    select = [
        sql.SQL("{}::real[] AS {}").format(sql.Identifier(c.name), sql.Identifier(c.name))
        if c.vector_dim
        else sql.SQL("{}::text AS {}").format(sql.Identifier(c.name), sql.Identifier(c.name))
        if c.type == "json"
        else sql.Identifier(c.name)
        for c in columns
    ] + [sql.Identifier(name) for name, _, _ in GOVERNANCE]
    # The version inlined as a literal: with a bind parameter the driver buffers the whole result.
    return sql.SQL("SELECT {} FROM {} WHERE dataset_version = {} ORDER BY {}, {}").format(
        sql.SQL(", ").join(select),
        ident(CURATED_SCHEMA, dataset),
        sql.Literal(version),
        sql.Identifier("_source_file_id"),
        sql.Identifier("_source_row"),
    )


def export_version(
    db: Database, dataset: str, version: str, out_file: IO[bytes], *, columns: list[Column]
) -> Exported:
    """Write the version's curated rows as Parquet into `out_file` (from its current position),
    streamed batch by batch; returns the SHA-256, size and row count of what was written."""
    import adbc_driver_postgresql.dbapi as adbc

    schema = arrow_schema(columns).with_metadata(
        {"dynamic_assets.dataset": dataset, "dynamic_assets.version": version}
    )
    start = out_file.tell()
    rows = 0
    with db.connect() as conn:
        text = _export_query(dataset, version, columns).as_string(conn)
    with adbc.connect(db.uri) as aconn:
        cur = aconn.cursor()
        try:
            cur.execute(text)
            reader = cur.fetch_record_batch()
            with pq.ParquetWriter(out_file, schema, **WRITER_OPTIONS) as writer:
                for batch in reader:
                    writer.write_table(
                        pa.Table.from_batches([batch]).cast(schema),
                        row_group_size=ROW_GROUP_ROWS,
                    )
                    rows += batch.num_rows
        finally:
            cur.close()
    end = out_file.tell()
    out_file.seek(start)
    digest = hashlib.sha256()
    while chunk := out_file.read(CHUNK):
        digest.update(chunk)
    out_file.seek(end)
    return Exported(digest.hexdigest(), end - start, rows)


def _upload(drive: Drive, path: str, spool: IO[bytes], size: int) -> None:
    spool.seek(0)
    upload = getattr(drive, "upload", None)
    if upload is not None:
        upload(path, spool, size, overwrite=True)
    else:
        drive.write_bytes(path, spool.read(), overwrite=True)


def _download(drive: Drive, path: str, where: str) -> tuple[IO[bytes], str]:
    """The drive's file in a spooled temporary file (the caller closes it), with its SHA-256."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - returned
    digest = hashlib.sha256()
    try:
        with drive.open(path) as stream:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
                spool.write(chunk)
    except FileNotFoundError:
        spool.close()
        raise ArchiveError(f"{where}: the archive file {path} is missing from the drive") from None
    except OSError as exc:
        spool.close()
        raise ArchiveError(f"{where}: cannot read the archive file {path}: {exc}") from None
    spool.seek(0)
    return spool, digest.hexdigest()


def _wire_schema(columns: list[Column]) -> pa.Schema:
    fields = [
        pa.field(c.name, pa.list_(pa.float32()) if c.vector_dim else ARROW_TYPES[c.type])
        for c in columns
    ]
    return pa.schema(fields + [pa.field(name, type_) for name, type_, _ in GOVERNANCE])


def load_archive(conn: psycopg.Connection, reg: Registered, spool: IO[bytes], table: str) -> int:
    """Inside the caller's transaction: `ai_curated.<table>`, a table like the dataset's parent,
    holding the rows of the archived Parquet in `spool` (binary COPY through a landing table,
    then one INSERT ... SELECT with the casts to the declared types). Returns the rows loaded."""
    where = f"{reg.where} (archive tier)"
    try:
        parquet = pq.ParquetFile(spool)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ArchiveError(f"{where}: the archive file is not readable Parquet: {exc}") from None
    wire = _wire_schema(reg.columns)
    names = [f.name for f in wire]
    if parquet.schema_arrow.names != names:
        raise ArchiveError(
            f"{where}: the archive file's columns {parquet.schema_arrow.names} are not the "
            f"version's {names}"
        )
    landing = f"{table}_l"
    wire_types = ["real[]" if c.vector_dim else WIRE_TYPES[c.type] for c in reg.columns] + [
        pg for _, _, pg in GOVERNANCE
    ]
    conn.execute(
        sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(
            sql.Identifier(landing),
            sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t))
                for n, t in zip(names, wire_types, strict=True)
            ),
        )
    )
    encoder = ArrowToPostgresBinaryEncoder(wire)
    try:
        with (
            conn.cursor() as cur,
            cur.copy(
                sql.SQL("COPY {} FROM STDIN WITH (FORMAT binary)").format(sql.Identifier(landing))
            ) as copy,
        ):
            copy.write(encoder.write_header())
            for batch in parquet.iter_batches(batch_size=ROW_GROUP_ROWS):
                copy.write(
                    encoder.write_batch(
                        pa.Table.from_batches([batch]).cast(wire).combine_chunks().to_batches()[0]
                    )
                )
            copy.write(encoder.finish())
    except (pa.ArrowInvalid, OSError) as exc:
        raise ArchiveError(f"{where}: the archive file cannot be read whole: {exc}") from None
    conn.execute(
        sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(
            ident(CURATED_SCHEMA, table), ident(CURATED_SCHEMA, reg.dataset)
        )
    )
    conn.execute(
        sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(ident(CURATED_SCHEMA, table))
    )
    casts = [
        sql.SQL("{}::{}").format(sql.Identifier(c.name), sql.SQL(c.pg_type)) for c in reg.columns
    ] + [sql.Identifier(name) for name, _, _ in GOVERNANCE]
    cur = conn.execute(
        sql.SQL("INSERT INTO {} (dataset_version, {}) SELECT {}, {} FROM {}").format(
            ident(CURATED_SCHEMA, table),
            sql.SQL(", ").join(sql.Identifier(n) for n in names),
            sql.Literal(reg.version),
            sql.SQL(", ").join(casts),
            sql.Identifier(landing),
        )
    )
    return cur.rowcount


def _check_content(conn: psycopg.Connection, reg: Registered, table: str, tier: str) -> None:
    """Raise ArchiveError unless the rows of `ai_curated.<table>` have the row count and the
    content digest of the version's fingerprint record."""
    assert reg.record is not None
    try:
        got = content_digest(
            conn, reg.dataset, reg.version, reg.record["schema"]["columns"], table=table
        )
    except FingerprintError as exc:
        raise ArchiveError(f"{reg.where} ({tier} tier): cannot digest the copy: {exc}") from None
    want = reg.record["rows"]
    if got.rows != int(want["count"]) or got.digest != want["content_digest"]:
        raise ArchiveError(
            f"{reg.where} ({tier} tier): the copy does not match the version's fingerprint "
            f"{reg.fingerprint} ({got.rows} rows, digest {got.digest[:16]}…; the fingerprint "
            f"records {want['count']} rows, digest {want['content_digest'][:16]}…)"
        )


def _scratch_name(dataset: str, version: str) -> str:
    return f"{dataset}__a_{table_suffix(version, uuid.uuid4().hex)}"


def verify_copy(db: Database, reg: Registered, drive: Drive, path: str, sha256: str) -> None:
    """Read the archive file back from the drive and check it against what was written (its
    SHA-256) and against the version's fingerprint (row count and content digest, recomputed
    in Postgres from the file's rows); nothing is kept."""
    spool, got = _download(drive, path, f"{reg.where} (archive tier)")
    with spool:
        if got != sha256:
            raise ArchiveError(
                f"{reg.where} (archive tier): {path} read back from the drive differs from the "
                "file written (SHA-256); nothing was dropped"
            )
        table = _scratch_name(reg.dataset, reg.version)
        with db.connect(autocommit=True) as conn:
            try:
                with conn.transaction():
                    load_archive(conn, reg, spool, table)
                    _check_content(conn, reg, table, "archive")
                    raise _RollBack
            except _RollBack:
                pass


class _RollBack(Exception):
    """Ends a transaction whose work is only to be checked, not kept."""


@dataclass(frozen=True)
class Archived:
    dataset: str
    version: str
    path: str
    sha256: str
    size_bytes: int
    rows: int


def archive_version(
    db: Database,
    drive: Drive,
    folder: str,
    dataset: str,
    version: str,
    *,
    step: Step | None = None,
) -> Archived | None:
    """Move one curated version from core to the archive (see the module). Returns None when the
    version is no longer in core. `step(name)` is called after `exported`, `uploaded`,
    `verified` and `dropped`."""
    step = step or (lambda _name: None)
    with db.connect(autocommit=True) as lock_conn, version_lock(lock_conn, dataset, version):
        with db.connect() as conn:
            reg = registered(conn, dataset, version)
        if reg.tier != "core":
            return None
        if reg.sensitive:
            raise ArchiveError(
                f"{reg.where} (core tier) belongs to a sensitive dataset: its archive would "
                "need encryption at rest, which the archive tier does not apply; it stays in core"
            )
        if not reg.fingerprint or not reg.record:
            raise ArchiveError(
                f"{reg.where} (core tier) has no fingerprint yet: a version is archived only "
                "against its fingerprint (materialize its fingerprint first)"
            )
        path = archive_path(folder, dataset, version, reg.fingerprint)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            exported = export_version(db, dataset, version, spool, columns=reg.columns)
            step("exported")
            if exported.rows != int(reg.record["rows"]["count"]):
                raise ArchiveError(
                    f"{reg.where} (core tier): {exported.rows} rows exported, the fingerprint "
                    f"records {reg.record['rows']['count']}; nothing was archived"
                )
            try:
                _upload(drive, path, spool, exported.size_bytes)
            except OSError as exc:
                raise ArchiveError(
                    f"{reg.where} (archive tier): uploading {path} failed: {exc}"
                ) from None
        step("uploaded")
        verify_copy(db, reg, drive, path, exported.sha256)
        step("verified")
        archived = Archived(
            dataset, version, path, exported.sha256, exported.size_bytes, exported.rows
        )
        with db.connect() as conn, conn.transaction():
            dataset_lock(conn, CURATED_SCHEMA, dataset)
            part = partition_name(dataset, version)
            if partition_exists(conn, CURATED_SCHEMA, part):
                conn.execute(
                    sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
                        ident(CURATED_SCHEMA, dataset), ident(CURATED_SCHEMA, part)
                    )
                )
                conn.execute(sql.SQL("DROP TABLE {}").format(ident(CURATED_SCHEMA, part)))
            _record_tier(conn, reg, "archive", archived, drop_postgres=True)
        step("dropped")
        return archived


def _record_tier(
    conn: psycopg.Connection,
    reg: Registered,
    tier: str,
    archived: Archived | None,
    *,
    drop_postgres: bool,
) -> None:
    locations = dict(reg.locations)
    if drop_postgres:
        locations.pop("postgres", None)
    else:
        locations["postgres"] = f"{CURATED_SCHEMA}.{reg.dataset}"
    if archived is not None:
        locations["archive"] = {
            "path": archived.path,
            "sha256": archived.sha256,
            "size_bytes": archived.size_bytes,
            "rows": archived.rows,
            "fingerprint": reg.fingerprint,
        }
    conn.execute(
        "UPDATE public.datasets SET tier = %s, platform_locations = %s, updated_at = now() "
        "WHERE name = %s AND version = %s AND status = 'curated'",
        (tier, Jsonb(locations), reg.dataset, reg.version),
    )


def _archived_file(reg: Registered, tier: str) -> dict[str, Any]:
    found = reg.archive
    if reg.tier != "archive" or not found:
        raise ArchiveError(f"{reg.where} is in the {reg.tier} tier, not in the archive")
    if found.get("fingerprint") != reg.fingerprint:
        raise ArchiveError(
            f"{reg.where} ({tier} tier): the archive file was written for fingerprint "
            f"{found.get('fingerprint')}, the version's is {reg.fingerprint}"
        )
    return found


def read_archived(
    db: Database,
    drive: Drive,
    dataset: str,
    version: str,
    columns: list[str],
) -> pa.Table:
    """The archived version's `columns` read from the drive, with the declared types; the
    file's SHA-256 must be the one recorded when it was archived."""
    with db.connect() as conn:
        reg = registered(conn, dataset, version)
    found = _archived_file(reg, "archive")
    spool, got = _download(drive, found["path"], f"{reg.where} (archive tier)")
    with spool:
        if got != found["sha256"]:
            raise ArchiveError(
                f"{reg.where} (archive tier): {found['path']} is not the file archived for "
                f"fingerprint {reg.fingerprint} (its SHA-256 differs): it was altered or "
                "truncated; refusing to read it"
            )
        try:
            table = pq.read_table(spool, columns=columns)
        except (pa.ArrowInvalid, OSError) as exc:
            raise ArchiveError(
                f"{reg.where} (archive tier): {found['path']} is not readable Parquet: {exc}"
            ) from None
    return table.replace_schema_metadata(None)


def restore_version(db: Database, drive: Drive, dataset: str, version: str) -> int:
    """Bring an archived version back into core: its rows loaded from the drive, checked against
    the version's fingerprint (row count and content digest), swapped in as its partition in one
    transaction with the registry's tier. The archive file stays. Returns the rows restored."""
    with db.connect(autocommit=True) as lock_conn, version_lock(lock_conn, dataset, version):
        with db.connect() as conn:
            reg = registered(conn, dataset, version)
        found = _archived_file(reg, "archive")
        spool, got = _download(drive, found["path"], f"{reg.where} (archive tier)")
        with spool:
            if got != found["sha256"]:
                raise ArchiveError(
                    f"{reg.where} (archive tier): {found['path']} is not the file archived "
                    "(its SHA-256 differs): it was altered or truncated; nothing was restored"
                )
            table = _scratch_name(dataset, version)
            with db.connect() as conn, conn.transaction():
                rows = load_archive(conn, reg, spool, table)
                _check_content(conn, reg, table, "archive")
                for c in reg.columns:
                    if c.vector_dim and c.vector_dim <= HNSW_MAX_DIM:
                        conn.execute(
                            sql.SQL("CREATE INDEX ON {} USING hnsw ({} vector_cosine_ops)").format(
                                ident(CURATED_SCHEMA, table), sql.Identifier(c.name)
                            )
                        )
                swap_partition(conn, CURATED_SCHEMA, dataset, version, table)
                _record_tier(conn, reg, "core", None, drop_postgres=False)
        return rows


def archived_versions(conn: psycopg.Connection) -> Iterator[tuple[str, str, dict]]:
    for name, version, locations in conn.execute(
        "SELECT name, version, platform_locations FROM public.datasets "
        "WHERE status = 'curated' AND tier = 'archive' ORDER BY name, version"
    ).fetchall():
        yield name, version, dict(locations or {})
