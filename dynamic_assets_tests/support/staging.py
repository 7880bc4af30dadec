"""Staging and curation without Dagster, as the runs do them: a file recorded in
`onedrive_ingest` like the manifest step records it and streamed into `ai_raw`, and a version
staged, curated and fingerprinted like the ingest job does it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pyarrow as pa
from psycopg import sql

from dynamic_assets.datasets import pipeline, registry
from dynamic_assets.datasets.staging import SourceFile, load_version
from dynamic_assets.db import Database
from dynamic_assets.declarations.model import FILE_EXTENSIONS, Dataset, Declarations
from dynamic_assets.drive import Drive
from dynamic_assets.drive.base import DriveItem
from dynamic_assets.provenance.fingerprint import compute_fingerprint, store_fingerprint
from dynamic_assets_tests.support.drive_files import write_file


def drive_path(ds: Dataset, version: str, name: str) -> str:
    """Where a file of the version lies in the drive."""
    return f"datasets/{ds.name}/{version}/{name}"


def source_file(
    local: Path,
    ds: Dataset,
    version: str = "v1",
    *,
    file_id: int = 7,
    fmt: str | None = None,
    name: str | None = None,
) -> SourceFile:
    """A local file offered to `load_version` as the version's file `name` (by default the
    local file's name) under `file_id`, not recorded in `onedrive_ingest`; the format follows
    the name's suffix unless `fmt` is given."""
    name = name or local.name
    return SourceFile(
        file_id,
        drive_path(ds, version, name),
        fmt or FILE_EXTENSIONS[Path(name).suffix],
        lambda: local.open("rb"),
    )


def recorded_source(
    conn: psycopg.Connection, ds: Dataset, version: str, local: Path, name: str | None = None
) -> SourceFile:
    """A local file recorded in `onedrive_ingest` as the version's file `name` (by default the
    local file's name), as the manifest step records a drive item, and offered to
    `load_version` under its ingest id."""
    name = name or local.name
    stat = local.stat()
    item = DriveItem(
        item_id=f"item-{ds.name}-{version}-{name}",
        path=drive_path(ds, version, name),
        name=name,
        is_folder=False,
        size=stat.st_size,
        modified_at=datetime.now(UTC),
        etag=f"etag-{stat.st_mtime_ns}-{stat.st_size}",
    )
    fmt = FILE_EXTENSIONS[Path(name).suffix]
    file_id = registry.record_file(conn, ds.name, version, item, fmt)
    return source_file(local, ds, version, file_id=file_id, fmt=fmt, name=name)


def stage_file(
    conn: psycopg.Connection,
    ds: Dataset,
    version: str,
    folder: Path,
    name: str,
    data: bytes | str | pa.Table,
) -> tuple[int, str]:
    """`data` written as the version's file `name`, recorded and staged as the only file of the
    version; its ingest id and drive path. The local copy lies in `folder` under
    `<version>-<name>`, so that versions may hold files of the same name."""
    local = write_file(folder, f"{version}-{name}", data)
    source = recorded_source(conn, ds, version, local, name)
    load_version(conn, ds, version, [source])
    return source.file_id, source.path


def version_rows(
    conn: psycopg.Connection,
    schema: str,
    ds: Dataset,
    version: str,
    select: sql.Composable,
    order: str,
) -> list[tuple]:
    """The rows of one version of `schema.<dataset>`: the `select` list, ordered by `order`."""
    return conn.execute(
        sql.SQL("SELECT {} FROM {} WHERE dataset_version = %s ORDER BY " + order).format(
            select, sql.Identifier(schema, ds.name)
        ),
        (version,),
    ).fetchall()


def curate_version(
    db: Database, drive: Drive, decls: Declarations, dataset: str, version: str
) -> None:
    """One version of a declared dataset staged from the drive and curated, as the ingest job
    does (without Dagster)."""
    ds = decls.dataset(dataset)
    pipeline.stage(db, drive, decls, ds, version)
    pipeline.curate(db, drive.kind, ds, version)


def curate_and_fingerprint(
    db: Database, drive: Drive, decls: Declarations, dataset: str, version: str
) -> str:
    """One version staged, curated and fingerprinted as the ingest job does; its fingerprint."""
    curate_version(db, drive, decls, dataset, version)
    with db.connect() as conn:
        fp = compute_fingerprint(conn, decls.dataset(dataset), version)
        store_fingerprint(conn, fp)
    return fp.fingerprint
