"""What trainers call: read a curated dataset version as a pandas DataFrame or an Arrow table.

    from dynamic_assets.client import read_curated
    df = read_curated("market")                                  # the current version
    df = read_curated("market", version="2024-06-01", columns=["date", "symbol", "close"])
    table = read_curated("embeddings", as_arrow=True)            # pyarrow.Table
    df = read_curated("market", version="2024-06-01", expected_fingerprint=fp)  # exactly that data

Rows come out of Postgres through ADBC (binary COPY into Arrow), not row by row, and columns get
their declared types: integer -> Int64, float -> float64, boolean -> boolean, string -> string,
date -> datetime64[s], timestamp -> datetime64[us, UTC], json -> Python objects, vector(N) ->
numpy float32 arrays.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import psycopg
import pyarrow as pa
from psycopg import IsolationLevel, sql

from dynamic_assets.db import Database
from dynamic_assets.db.connection import scalar
from dynamic_assets.declarations.model import Column, Dataset, load_declarations
from dynamic_assets.declarations.names import check_dataset_name, version_sort_key
from dynamic_assets.drive import Drive, LocalDrive
from dynamic_assets.read.frames import DatasetNotFound, to_pandas, typed_table
from dynamic_assets.settings import Settings

if TYPE_CHECKING:
    import pandas as pd


class FingerprintMismatch(RuntimeError):
    """The curated version is not the data the caller expected (its fingerprint differs)."""


def default_database(settings: Settings | None = None) -> Database:
    settings = settings or Settings.from_env()
    if settings.db_url_set:
        return Database(os.environ["SUPABASE_DB_URL"])
    return Database(pgdata=settings.pgdata)


def curated_versions(dataset: str, *, database: Database | None = None) -> list[str]:
    """The versions of a dataset that reached curated, oldest first."""
    from dynamic_assets.datasets.registry import curated_versions as _versions

    db = database or default_database()
    with db.connect() as conn:
        return _versions(conn, dataset)


def current_version(dataset: str, *, database: Database | None = None) -> str | None:
    """The dataset's current version: the promoted one, else the newest curated."""
    from dynamic_assets.datasets.pointers import current_version as _current

    db = database or default_database()
    with db.connect() as conn:
        return _current(conn, dataset)


def _registry_columns(db: Database, dataset: str, version: str) -> list[Column] | None:
    with db.connect() as conn:
        row = conn.execute(
            "SELECT schema FROM public.datasets WHERE name = %s AND version = %s AND status = 'curated'",
            (dataset, version),
        ).fetchone()
    if row is None:
        return None
    return [Column.model_validate(c) for c in (row[0] or [])]


def read_curated(
    dataset: str,
    version: str | None = None,
    columns: list[str] | None = None,
    *,
    as_arrow: bool = False,
    database: Database | None = None,
    expected_fingerprint: str | None = None,
    via: str = "adbc",
    drive: Drive | None = None,
) -> pd.DataFrame | pa.Table:
    """Read one curated version with its declared types: without `version`, the current one (the
    version last promoted, `dynamic-assets promote`; the newest curated while none was).

    `via="rest"` reads through Supabase REST with `SUPABASE_URL` and `SUPABASE_KEY` instead of a
    database connection; the key's role decides what it may read (`dynamic_assets.read.rest`).

    With `expected_fingerprint`, the rows are read only if they are exactly the data of that
    fingerprint: the registry's fingerprint must equal it, and the fingerprint recomputed from the
    version's files and curated rows (content digest inside Postgres, one pass over the rows) must
    too; the rows are then read in the same database snapshot as the check. Otherwise
    `FingerprintMismatch` says what differs.

    A version in the main tier is read from the main database (the URL in the environment
    variable `storage.main.url_env` names). A version in the archive tier is read from its Parquet file in `drive` (by default the local
    drive of the settings), its SHA-256 checked against the one recorded when it was archived.
    """
    if via == "rest" and database is None and expected_fingerprint is None:
        from dynamic_assets.read.rest import read_curated_rest

        return read_curated_rest(dataset, version, columns, as_arrow=as_arrow)
    if via != "adbc":
        raise ValueError(
            f"via={via!r}: use 'adbc', or 'rest' (without database or expected_fingerprint)"
        )
    import adbc_driver_postgresql.dbapi as adbc

    check_dataset_name(dataset)
    db = database or default_database()
    versions = curated_versions(dataset, database=db)
    if not versions:
        raise DatasetNotFound(f"dataset {dataset!r} has no curated version")
    if version is None:
        version = current_version(dataset, database=db) or max(versions, key=version_sort_key)
    elif version not in versions:
        raise DatasetNotFound(
            f"dataset {dataset!r} has no curated version {version!r}; curated versions: {', '.join(versions)}"
        )
    declared = _registry_columns(db, dataset, version) or []
    by_name = {c.name: c for c in declared}
    if columns is None:
        columns = [c.name for c in declared]
    unknown = [c for c in columns if c not in by_name]
    if unknown:
        raise KeyError(
            f"dataset {dataset!r} has no column(s) {unknown}; columns: {', '.join(by_name)}"
        )

    archived = _archived_read(db, dataset, version, columns, expected_fingerprint, drive)
    if archived is not None:
        table = typed_table(archived, [by_name[c] for c in columns])
        return table if as_arrow else to_pandas(table, [by_name[c] for c in columns])

    select = sql.SQL(", ").join(
        sql.SQL("{}::real[] AS {}").format(sql.Identifier(c), sql.Identifier(c))
        if by_name[c].vector_dim
        else sql.Identifier(c)
        for c in columns
    )
    # The version inlined as a literal: with a bind parameter the driver buffers the whole result.
    query = sql.SQL("SELECT {} FROM {} WHERE dataset_version = {}").format(
        select, sql.Identifier("ai_curated", dataset), sql.Literal(version)
    )
    rows_db = _main_source(db, dataset, version) or db
    with _rows_connection(rows_db, db, dataset, version) as conn:
        text = query.as_string(conn)
        set_snapshot = None
        if expected_fingerprint is not None:
            # Check and read in one snapshot: a version swapped in meanwhile is not read.
            conn.isolation_level = IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            snapshot = scalar(conn, "SELECT pg_export_snapshot()")
            if rows_db is db:
                _check_fingerprint(conn, dataset, version, expected_fingerprint)
            else:
                with db.connect() as registry:
                    _check_fingerprint(registry, dataset, version, expected_fingerprint, rows=conn)
            # SET takes no bind parameter: the snapshot id is quoted as a literal.
            set_snapshot = (
                sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)).as_string(conn)
            )
        with adbc.connect(rows_db.uri) as aconn:
            cur = aconn.cursor()
            try:
                if set_snapshot is not None:
                    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    cur.execute(set_snapshot)
                cur.execute(text)
                table = cur.fetch_arrow_table()
            finally:
                cur.close()
    table = typed_table(table, [by_name[c] for c in columns])
    if as_arrow:
        return table
    return to_pandas(table, [by_name[c] for c in columns])


def _archived_read(
    db: Database,
    dataset: str,
    version: str,
    columns: list[str],
    expected: str | None,
    drive: Drive | None,
) -> pa.Table | None:
    """The version's columns read from the archive tier, or None when it is not archived."""
    from dynamic_assets.lifecycle.archive import read_archived

    with db.connect() as conn:
        row = conn.execute(
            "SELECT tier, fingerprint FROM public.datasets "
            "WHERE name = %s AND version = %s AND status = 'curated'",
            (dataset, version),
        ).fetchone()
    if row is None or row[0] != "archive":
        return None
    if expected is not None and row[1] != expected:
        raise FingerprintMismatch(
            f"{dataset} {version} (archive tier) has fingerprint {row[1]}, not {expected}: "
            "plan again on the current fingerprint"
        )
    if drive is None:
        settings = Settings.from_env()
        if settings.onedrive is not None:
            raise ValueError(
                f"{dataset} {version} is in the archive tier on OneDrive: pass drive= "
                "(the drive resource's drive) to read it"
            )
        drive = LocalDrive(settings.drive_root)
    return read_archived(db, drive, dataset, version, columns)


def _main_source(db: Database, dataset: str, version: str) -> Database | None:
    """The main tier's database when the version lives there, else None."""
    from dynamic_assets.lifecycle.archive import registered
    from dynamic_assets.lifecycle.main_tier import main_of

    with db.connect() as conn:
        reg = registered(conn, dataset, version)
    return main_of(reg) if reg.tier == "main" else None


def _rows_connection(rows_db: Database, db: Database, dataset: str, version: str):
    """A connection to the database holding the version's rows: core, or the main tier (an
    unreachable main tier named with the version)."""
    if rows_db is db:
        return db.connect()
    from dynamic_assets.lifecycle.main_tier import main_connection

    return main_connection(rows_db, f"{dataset} {version}", autocommit=False)


def _check_fingerprint(
    conn: psycopg.Connection,
    dataset: str,
    version: str,
    expected: str,
    *,
    rows: psycopg.Connection | None = None,
) -> None:
    """Raise FingerprintMismatch unless the version is, in registry and in rows (on `rows`, the
    main tier's connection, when given), `expected`."""
    from dynamic_assets.provenance.fingerprint import (
        FingerprintError,
        build_record,
        content_digest,
        fingerprint_of,
        version_files,
    )

    row = conn.execute(
        "SELECT fingerprint, fingerprint_record FROM public.datasets "
        "WHERE name = %s AND version = %s AND status = 'curated'",
        (dataset, version),
    ).fetchone()
    where = f"{dataset} {version}"
    if row is None or not row[0] or not row[1]:
        raise FingerprintMismatch(
            f"{where} has no fingerprint yet (materialize provenance/{dataset}/fingerprint); "
            f"cannot confirm it is the data of fingerprint {expected}"
        )
    registered, record = row
    if registered != expected:
        raise FingerprintMismatch(
            f"{where} now has fingerprint {registered}, not {expected}: the data changed since "
            "the run was planned on it; plan again on the current fingerprint"
        )
    try:
        files = version_files(conn, dataset, version)
        content = content_digest(rows or conn, dataset, version, record["schema"]["columns"])
    except FingerprintError as exc:
        raise FingerprintMismatch(f"{where}: cannot recompute its fingerprint: {exc}") from exc
    now = build_record(
        dataset=dataset,
        version=version,
        schema=record["schema"],
        files=files,
        rows=content.rows,
        digest=content.digest,
    )
    if fingerprint_of(now) != expected:
        changed = [
            part
            for part, a, b in (
                ("source files", record.get("files"), now["files"]),
                ("row count", record["rows"]["count"], now["rows"]["count"]),
                ("row contents", record["rows"]["content_digest"], now["rows"]["content_digest"]),
            )
            if a != b
        ]
        raise FingerprintMismatch(
            f"{where}: the curated data no longer matches its registered fingerprint {expected} "
            f"({', '.join(changed) or 'record'} differ, recomputed {fingerprint_of(now)}); "
            "refusing to read it"
        )


def declared_dataset(dataset: str, settings: Settings | None = None) -> Dataset:
    settings = settings or Settings.from_env()
    return load_declarations(settings.config_path).dataset(dataset)
