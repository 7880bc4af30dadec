"""Fingerprints of curated dataset versions (spec v1, see docs/fingerprint.md).

A fingerprint says exactly which bytes a curated version came from and what it holds: the
SHA-256 of every source file (taken while the file streamed into staging, kept in
`onedrive_ingest.sha256`), the declared schema in canonical form, the dataset and version, the
curated row count and a content digest of the curated rows. The fingerprint is the SHA-256 of
the canonical JSON of that record.

The content digest is computed inside Postgres, rows never come into Python: each row's declared
columns are written in a canonical text form and hashed; the row hashes are grouped by their
first byte, each group's sorted hashes are hashed, and the digest is the SHA-256 of the groups'
(byte, hash) pairs in byte order. It changes if any single value changes, and does not depend on
the physical order of the rows.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from dynamic_assets.db.connection import one_row, scalar
from dynamic_assets.db.tables import CURATED_SCHEMA, ident, table_columns
from dynamic_assets.declarations.model import VECTOR_TYPE, Dataset
from dynamic_assets.provenance.canonical import canonical_json, canonical_sha256

SPEC = "dynamic-assets/fingerprint/v1"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class FingerprintError(RuntimeError):
    """A fingerprint could not be computed; the message says which dataset version and why."""


def schema_record(ds: Dataset) -> dict[str, Any]:
    """The declared schema in canonical form: columns (name, type, nullable) in declared order,
    primary key, schema version. Descriptions are left out: they document, they do not shape."""
    return {
        "columns": [
            {"name": c.name, "type": c.type, "nullable": bool(c.nullable)} for c in ds.columns
        ],
        "primary_key": list(ds.primary_key),
        "schema_version": int(ds.schema_version),
    }


def canonical_value_sql(name: str, type_: str) -> sql.Composable:
    """The canonical text of one column's value (NULL stays NULL), per docs/fingerprint.md.

    Floats and vectors are written as the hex of their exact IEEE 754 bytes, so no rounding or
    server setting can change them; dates and timestamps as ISO 8601 in UTC; json as Postgres'
    normalized jsonb text.
    """
    col = sql.Identifier(name)
    if type_ == "string":
        return col
    if type_ == "integer":
        return sql.SQL("{}::text").format(col)
    if type_ == "float":
        return sql.SQL("encode(float8send({}), 'hex')").format(col)
    if type_ == "boolean":
        return sql.SQL("CASE WHEN {c} THEN 'true' WHEN NOT {c} THEN 'false' END").format(c=col)
    if type_ == "date":
        return sql.SQL("{}::text").format(col)
    if type_ == "timestamp":
        return sql.SQL(
            "CASE WHEN isfinite({c}) THEN to_char({c} AT TIME ZONE 'UTC', "
            '\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\') ELSE {c}::text END'
        ).format(c=col)
    if type_ == "json":
        return sql.SQL("{}::text").format(col)
    if VECTOR_TYPE.match(type_):
        return sql.SQL("encode(vector_send({}), 'hex')").format(col)
    raise FingerprintError(f"column {name}: type {type_!r} has no canonical form in spec v1")


def row_text_sql(columns: list[dict[str, Any]]) -> sql.Composable:
    """One row as text: per column `N` for NULL, else `V<bytes>:<text>` (length-prefixed, so the
    concatenation is unambiguous)."""
    parts = []
    for c in columns:
        value = canonical_value_sql(c["name"], c["type"])
        parts.append(
            sql.SQL("coalesce('V' || octet_length({v})::text || ':' || {v}, 'N')").format(v=value)
        )
    return sql.SQL(" || ").join(parts) if parts else sql.SQL("''")


@dataclass(frozen=True)
class ContentDigest:
    rows: int
    digest: str
    seconds: float


def content_digest(
    conn: psycopg.Connection,
    dataset: str,
    version: str,
    columns: list[dict[str, Any]],
    *,
    table: str | None = None,
) -> ContentDigest:
    """Row count and content digest of one curated version, computed inside Postgres: the
    rows of the version in `ai_curated.<dataset>`, or in `ai_curated.<table>` (the typed table
    built for the version, before it is swapped in)."""
    started = time.perf_counter()
    table = table or dataset
    existing = table_columns(conn, CURATED_SCHEMA, table)
    if not existing:
        raise FingerprintError(f"ai_curated.{table} does not exist: nothing was curated")
    missing = [c["name"] for c in columns if c["name"] not in existing]
    if missing:
        raise FingerprintError(
            f"ai_curated.{table} has no column(s) {', '.join(missing)} that the schema declares"
        )
    encoding = scalar(conn, "SHOW server_encoding")
    if encoding.upper() not in ("UTF8", "UTF-8"):
        raise FingerprintError(
            f"the database encoding is {encoding}; fingerprint spec v1 needs a UTF8 database"
        )
    # OFFSET 0 keeps the planner from inlining `r` into the grouping and the aggregate, which
    # would compute every row hash three times; this way parallel workers hash each row once
    # and one sort on (first byte, hash) feeds the group aggregates.
    query = sql.SQL(
        """WITH r AS (
               SELECT sha256(convert_to({row}, 'UTF8')) AS h FROM {table}
                WHERE dataset_version = %s OFFSET 0
           ), g AS (
               SELECT get_byte(h, 0) AS b, count(*) AS n,
                      sha256(string_agg(h, ''::bytea ORDER BY h)) AS gh
                 FROM r GROUP BY 1
           )
           SELECT coalesce(sum(n), 0)::bigint,
                  encode(sha256(coalesce(
                      string_agg(set_byte('\\x00'::bytea, 0, b) || gh, ''::bytea ORDER BY b),
                      ''::bytea)), 'hex')
             FROM g"""
    ).format(row=row_text_sql(columns), table=ident(CURATED_SCHEMA, table))
    with conn.transaction():
        # Only ISO dates depend on a session setting; pin it for this transaction.
        conn.execute("SET LOCAL DateStyle = 'ISO, YMD'")
        conn.execute("SET LOCAL TimeZone = 'UTC'")
        conn.execute("SET LOCAL work_mem = '64MB'")  # the sort of the row hashes: 36 B a row
        rows, digest = one_row(conn, query, (version,))
    return ContentDigest(int(rows), digest, time.perf_counter() - started)


def version_files(conn: psycopg.Connection, dataset: str, version: str) -> list[dict[str, Any]]:
    """The source files a curated version came from (`onedrive_ingest` rows marked curated)."""
    rows = conn.execute(
        "SELECT path, sha256, size_bytes FROM public.onedrive_ingest "
        "WHERE dataset = %s AND version = %s AND status = 'curated' "
        'ORDER BY path COLLATE "C"',  # byte order of the UTF-8 paths, as the record's
        (dataset, version),
    ).fetchall()
    return _file_records(rows)


def _file_records(rows) -> list[dict[str, Any]]:
    """(path, sha256, size_bytes) rows as the record's files; each must have its SHA-256."""
    files = []
    for path, sha, size in rows:
        if not sha:
            raise FingerprintError(
                f"{path}: no SHA-256 was recorded when it was loaded; re-run the version"
            )
        files.append({"path": path, "sha256": sha, "size_bytes": int(size or 0)})
    return files


def unlisted_sources(conn: psycopg.Connection, dataset: str, version: str) -> list[str]:
    """The source files of the version's curated rows that `version_files` does not list (not
    recorded as curated files of this dataset version), by path or `#<id>`."""
    if "_source_file_id" not in table_columns(conn, CURATED_SCHEMA, dataset):
        raise FingerprintError(f"ai_curated.{dataset} does not record the source file of its rows")
    rows = conn.execute(
        sql.SQL(
            """SELECT s.id, i.path
                 FROM (SELECT DISTINCT _source_file_id AS id FROM {table}
                        WHERE dataset_version = %s) s
                 LEFT JOIN public.onedrive_ingest i ON i.id = s.id
                WHERE i.id IS NULL OR i.status <> 'curated'
                   OR i.dataset IS DISTINCT FROM %s OR i.version IS DISTINCT FROM %s
                ORDER BY 2, 1"""
        ).format(table=ident(CURATED_SCHEMA, dataset)),
        (version, dataset, version),
    ).fetchall()
    return [path if path is not None else f"#{file_id}" for file_id, path in rows]


def build_record(
    *,
    dataset: str,
    version: str,
    schema: dict[str, Any],
    files: list[dict[str, Any]],
    rows: int,
    digest: str,
) -> dict[str, Any]:
    """The canonical fingerprint record (spec v1)."""
    return {
        "spec": SPEC,
        "dataset": dataset,
        "version": version,
        "schema": schema,
        "files": record_files(files),
        "rows": {"count": int(rows), "content_digest": digest},
    }


def record_files(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The record's `files`: path, sha256 and size of each, in the byte order of the paths."""
    return sorted(
        (
            {"path": f["path"], "sha256": f["sha256"], "size_bytes": int(f["size_bytes"])}
            for f in files
        ),
        key=lambda f: f["path"].encode("utf-8"),  # byte order, as COLLATE "C"
    )


def fingerprint_of(record: dict[str, Any]) -> str:
    """The fingerprint: SHA-256 (hex) of the canonical JSON of the record."""
    return canonical_sha256(record)


@dataclass(frozen=True)
class Fingerprint:
    dataset: str
    version: str
    record: dict[str, Any]
    fingerprint: str
    seconds: float
    digest_seconds: float

    @property
    def rows(self) -> int:
        return int(self.record["rows"]["count"])

    @property
    def content_digest(self) -> str:
        return str(self.record["rows"]["content_digest"])

    @property
    def files(self) -> list[dict[str, Any]]:
        return list(self.record["files"])

    @property
    def size_bytes(self) -> int:
        return sum(int(f["size_bytes"]) for f in self.record["files"])


def compute_fingerprint(conn: psycopg.Connection, ds: Dataset, version: str) -> Fingerprint:
    """Fingerprint one curated version from the registry, the ingest records and the curated rows."""
    started = time.perf_counter()
    registered = conn.execute(
        "SELECT 1 FROM public.datasets WHERE name = %s AND version = %s AND status = 'curated'",
        (ds.name, version),
    ).fetchone()
    if registered is None:
        raise FingerprintError(
            f"{ds.name} {version} has not reached curated: nothing to fingerprint"
        )
    schema = schema_record(ds)
    files = version_files(conn, ds.name, version)
    content = content_digest(conn, ds.name, version, schema["columns"])
    unlisted = unlisted_sources(conn, ds.name, version)
    if unlisted:
        raise FingerprintError(
            f"{ds.name} {version}: curated rows come from {len(unlisted)} source file(s) not "
            f"recorded as curated files of this version ({', '.join(unlisted[:5])}"
            f"{', ...' if len(unlisted) > 5 else ''}); a fingerprint lists every source file: "
            f"run the version again (dynamic-assets run --all --dataset {ds.name} "
            f"--version {version})"
        )
    return _fingerprint(ds, version, schema, files, content, started)


def _fingerprint(
    ds: Dataset,
    version: str,
    schema: dict[str, Any],
    files: list[dict[str, Any]],
    content: ContentDigest,
    started: float,
) -> Fingerprint:
    record = build_record(
        dataset=ds.name,
        version=version,
        schema=schema,
        files=files,
        rows=content.rows,
        digest=content.digest,
    )
    return Fingerprint(
        ds.name,
        version,
        record,
        fingerprint_of(record),
        time.perf_counter() - started,
        content.seconds,
    )


class BuildDigest:
    """The content digest of the typed table `table` built for `version`, computed on `conn`
    (autocommit, owned from here on) by a thread of its own while the blocking checks judge the
    table on other connections. `keep` waits for it and records it with the build's record
    (`curated_builds`), for `fingerprint_table` to take; `cancel` stops the server's scan
    (the connection's cancel request, as `pg_cancel_backend`) and records nothing: a version
    whose blocking checks fail keeps no digest."""

    def __init__(self, conn: psycopg.Connection, ds: Dataset, version: str, table: str):
        self._conn = conn
        self._key = (ds.name, version, table)
        self._columns = schema_record(ds)["columns"]
        self._content: ContentDigest | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._compute, name="build-digest", daemon=True)
        self._thread.start()

    def _compute(self) -> None:
        dataset, version, table = self._key
        try:
            self._content = content_digest(self._conn, dataset, version, self._columns, table=table)
        except BaseException as exc:  # handed to `keep`, or dropped by `cancel`
            self._error = exc

    def keep(self) -> None:
        """Wait for the digest and record it with the build (raises what computing it raised)."""
        try:
            self._thread.join()
            if self._error is not None:
                raise self._error
            assert self._content is not None
            with self._conn.transaction():
                self._conn.execute(
                    "UPDATE public.curated_builds SET content_rows = %s, content_digest = %s, "
                    "digest_columns = %s WHERE dataset = %s AND version = %s AND table_name = %s",
                    (
                        self._content.rows,
                        self._content.digest,
                        canonical_sha256(self._columns),
                        *self._key,
                    ),
                )
        finally:
            self._conn.close()

    def cancel(self) -> None:
        """Stop computing the digest and record nothing. The cancel request is sent again until
        the thread ends: one that reaches the server between two of its statements is void."""
        try:
            while self._thread.is_alive():
                self._conn.cancel_safe(timeout=5.0)
                self._thread.join(timeout=0.1)
        finally:
            self._conn.close()


def _build_digest(
    conn: psycopg.Connection, ds: Dataset, version: str, table: str, columns: list[dict[str, Any]]
) -> ContentDigest:
    """The content digest kept for the build `table` over `columns`, else computed now."""
    started = time.perf_counter()
    row = conn.execute(
        "SELECT content_rows, content_digest FROM public.curated_builds WHERE dataset = %s "
        "AND version = %s AND table_name = %s AND digest_columns = %s "
        "AND content_digest IS NOT NULL AND content_rows = rows",
        (ds.name, version, table, canonical_sha256(columns)),
    ).fetchone()
    if row is not None:
        return ContentDigest(int(row[0]), str(row[1]), time.perf_counter() - started)
    return content_digest(conn, ds.name, version, columns, table=table)


def fingerprint_table(
    conn: psycopg.Connection, ds: Dataset, version: str, table: str, files: list[dict[str, Any]]
) -> Fingerprint:
    """Fingerprint the typed table `table` built for `version` (in `ai_curated`, not yet its
    partition) from `files`, the version's source files (`path`, `sha256`, `size_bytes`): the
    fingerprint `compute_fingerprint` gives once the table is swapped in and the files are
    recorded curated."""
    started = time.perf_counter()
    schema = schema_record(ds)
    records = _file_records(
        sorted(
            ((f["path"], f["sha256"], f["size_bytes"]) for f in files),
            key=lambda f: f[0].encode("utf-8"),
        )
    )
    content = _build_digest(conn, ds, version, table, schema["columns"])
    # Each row's source file is one of `files`: the rows and the record agree.
    unlisted = conn.execute(
        sql.SQL(
            "SELECT DISTINCT _source_file_id FROM {} WHERE NOT (_source_file_id = ANY(%s))"
        ).format(ident(CURATED_SCHEMA, table)),
        ([int(f["id"]) for f in files],),
    ).fetchall()
    if unlisted:
        raise FingerprintError(
            f"{ds.name} {version}: the typed table holds rows of {len(unlisted)} source file(s) "
            "not among the version's files; materialize ai_raw/"
            f"{ds.name} for {version} again"
        )
    return _fingerprint(ds, version, schema, records, content, started)


def curated_fingerprint(conn: psycopg.Connection, dataset: str, version: str) -> str | None:
    """The registry's fingerprint of a curated version; None when it has none (yet)."""
    row = conn.execute(
        "SELECT fingerprint FROM public.datasets WHERE name = %s AND version = %s "
        "AND status = 'curated'",
        (dataset, version),
    ).fetchone()
    return row[0] if row is not None and row[0] else None


def stored_fingerprint(conn: psycopg.Connection, ds: Dataset, version: str) -> Fingerprint | None:
    """The fingerprint stored with a curated version, None when it has none (a version curated
    before fingerprints were committed with the swap). Raises `FingerprintError` when its record
    does not list exactly the version's curated files, or is not the fingerprint of itself."""
    started = time.perf_counter()
    row = conn.execute(
        "SELECT fingerprint, fingerprint_record FROM public.datasets "
        "WHERE name = %s AND version = %s AND status = 'curated'",
        (ds.name, version),
    ).fetchone()
    if row is None:
        raise FingerprintError(
            f"{ds.name} {version} has not reached curated: nothing to fingerprint"
        )
    fingerprint, record = row
    if not fingerprint or record is None:
        return None
    files = version_files(conn, ds.name, version)
    if record.get("files") != record_files(files):
        raise FingerprintError(
            f"{ds.name} {version}: the stored fingerprint does not list the version's curated "
            f"files; run the version again (dynamic-assets run --all --dataset {ds.name} "
            f"--version {version})"
        )
    if fingerprint_of(record) != fingerprint:
        raise FingerprintError(f"{ds.name} {version}: the stored fingerprint is not its record's")
    return Fingerprint(ds.name, version, record, fingerprint, time.perf_counter() - started, 0.0)


def store_fingerprint(conn: psycopg.Connection, fp: Fingerprint) -> int:
    """Write the fingerprint to the `datasets` registry row; returns the row id."""
    from dynamic_assets.datasets.registry import combined_checksum

    row = conn.execute(
        """UPDATE public.datasets
              SET checksum = %s, size_bytes = %s, fingerprint = %s, content_digest = %s,
                  fingerprint_record = %s, fingerprinted_at = now(), updated_at = now()
            WHERE name = %s AND version = %s AND status = 'curated'
        RETURNING id""",
        (
            combined_checksum(fp.files),
            fp.size_bytes,
            fp.fingerprint,
            fp.content_digest,
            Jsonb(fp.record),
            fp.dataset,
            fp.version,
        ),
    ).fetchone()
    if row is None:
        raise FingerprintError(f"{fp.dataset} {fp.version} is not registered as curated")
    return int(row[0])


def record_bytes(record: dict[str, Any]) -> bytes:
    """The exact bytes the fingerprint is the SHA-256 of."""
    return canonical_json(record)
