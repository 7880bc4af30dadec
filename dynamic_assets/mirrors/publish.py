"""Mirror one curated version to one declared S3 platform, and record where it lives.

The version is exported as Parquet (`export.export_version`), uploaded under its deterministic
key unless the object already holds those bytes (`s3.put_file`), the dataset's `latest` pointer
follows when the version is the dataset's current one, and `datasets.platform_locations.<name>`
records `{"url", "sha256", "size_bytes", "fingerprint"}`. Any failure of the store is a
`MirrorError` naming platform, dataset and version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from dynamic_assets.datasets import pointers
from dynamic_assets.db import Database
from dynamic_assets.declarations.model import Column, Declarations
from dynamic_assets.declarations.names import version_sort_key
from dynamic_assets.declarations.platforms import DvcPlatform, S3Platform, declared_platform
from dynamic_assets.mirrors import s3
from dynamic_assets.mirrors.export import PARQUET_MEDIA_TYPE, export_version


@dataclass(frozen=True)
class Mirrored:
    platform: str
    dataset: str
    version: str
    placed: s3.Placed
    rows: int
    latest_moved: bool


def s3_platform(decls: Declarations, name: str) -> S3Platform:
    return declared_platform(decls.platforms, name, S3Platform)


def registered_version(conn: psycopg.Connection, dataset: str, version: str) -> tuple[str, list]:
    """The registry's fingerprint and declared schema of a curated version."""
    row = conn.execute(
        "SELECT fingerprint, schema FROM public.datasets "
        "WHERE name = %s AND version = %s AND status = 'curated'",
        (dataset, version),
    ).fetchone()
    if row is None:
        raise LookupError(f"{dataset} {version} has not reached curated")
    if not row[0]:
        raise LookupError(f"{dataset} {version} has no fingerprint yet")
    return row[0], [Column.model_validate(c) for c in (row[1] or [])]


def current_version(conn: psycopg.Connection, dataset: str) -> str | None:
    """The version `latest` names: the dataset's current version (`datasets.pointers`)."""
    return pointers.current_version(conn, dataset)


def record_location(
    conn: psycopg.Connection, dataset: str, version: str, name: str, entry: dict[str, Any]
) -> None:
    conn.execute(
        "UPDATE public.datasets SET platform_locations = platform_locations || %s, "
        "updated_at = now() WHERE name = %s AND version = %s AND status = 'curated'",
        (Jsonb({name: entry}), dataset, version),
    )


def recorded_location(
    conn: psycopg.Connection, dataset: str, version: str, name: str
) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT platform_locations -> %s FROM public.datasets "
        "WHERE name = %s AND version = %s AND status = 'curated'",
        (name, dataset, version),
    ).fetchone()
    return row[0] if row is not None and isinstance(row[0], dict) else None


def mirror_version(
    db: Database,
    decls: Declarations,
    dataset: str,
    version: str,
    name: str,
    *,
    environ: Mapping[str, str] | None = None,
    multipart_threshold: int = s3.MULTIPART_THRESHOLD,
    multipart_chunk: int = s3.MULTIPART_CHUNK,
) -> Mirrored:
    """Mirror `dataset` `version` to the S3 platform `name`."""
    platform = s3_platform(decls, name)
    where = f"mirror {name}: {dataset} {version}"
    with db.connect() as conn:
        try:
            fingerprint, columns = registered_version(conn, dataset, version)
        except LookupError as exc:
            raise s3.MirrorError(f"{where}: {exc}; nothing to mirror") from exc
    key = s3.object_key(platform, name, dataset, version, fingerprint)
    url = s3.location(platform, key)
    try:
        client = s3.s3_client(name, platform, environ)
        with export_version(db, dataset, version, columns, fingerprint=fingerprint) as out:
            uploaded = s3.put_file(
                client,
                platform,
                key,
                out.file,
                out.sha256,
                out.size_bytes,
                content_type=PARQUET_MEDIA_TYPE,
                threshold=multipart_threshold,
                chunk=multipart_chunk,
            )
            placed = s3.Placed(url, key, out.sha256, out.size_bytes, uploaded)
            rows = out.rows
        with db.connect() as conn:
            current = current_version(conn, dataset)
        moved = False
        if current == version:
            moved = s3.put_bytes(
                client,
                platform,
                s3.latest_key(platform, dataset),
                s3.pointer_bytes(dataset, version, url, placed.sha256, placed.size_bytes),
                "application/json",
            )
    except s3.MirrorError:
        raise
    except Exception as exc:
        if not _store_error(exc):
            raise
        raise s3.MirrorError(
            f"{where} (s3://{platform.bucket}/{platform.prefix}): {s3.refusal(exc)}"
        ) from None
    with db.connect() as conn:
        record_location(
            conn,
            dataset,
            version,
            name,
            {
                "url": url,
                "sha256": placed.sha256,
                "size_bytes": placed.size_bytes,
                "fingerprint": fingerprint,
            },
        )
    return Mirrored(name, dataset, version, placed, rows, moved)


@dataclass(frozen=True)
class Pointed:
    platform: str
    dataset: str
    version: str
    url: str
    moved: bool


def point_latest(
    db: Database,
    decls: Declarations,
    dataset: str,
    name: str,
    *,
    environ: Mapping[str, str] | None = None,
) -> Pointed | None:
    """Make the `latest` object of `dataset` on the S3 platform `name` name the dataset's current
    version, from the location recorded when that version was mirrored; None when the current
    version is not mirrored there with its fingerprint (its mirror moves `latest` when it runs)."""
    platform = s3_platform(decls, name)
    with db.connect() as conn:
        version = current_version(conn, dataset)
        if version is None:
            return None
        fingerprint, _ = registered_version(conn, dataset, version)
        entry = recorded_location(conn, dataset, version, name)
    if entry is None or entry.get("fingerprint") != fingerprint:
        return None
    try:
        client = s3.s3_client(name, platform, environ)
        moved = s3.put_bytes(
            client,
            platform,
            s3.latest_key(platform, dataset),
            s3.pointer_bytes(dataset, version, entry["url"], entry["sha256"], entry["size_bytes"]),
            "application/json",
        )
    except Exception as exc:
        if not _store_error(exc):
            raise
        raise s3.MirrorError(
            f"mirror {name}: {dataset} {version} (s3://{platform.bucket}/{platform.prefix}): "
            f"latest not moved: {s3.refusal(exc)}"
        ) from None
    return Pointed(name, dataset, version, entry["url"], moved)


def _store_error(exc: BaseException) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    return isinstance(exc, ClientError | BotoCoreError)


def pending_mirrors(
    conn: psycopg.Connection,
    decls: Declarations,
    dataset: str | None = None,
    version: str | None = None,
    *,
    kind: type[S3Platform | DvcPlatform] = S3Platform,
) -> list[tuple[str, str, str]]:
    """(dataset, version, platform) of every fingerprinted curated version whose recorded location
    on a declared platform of `kind` (S3 by default, or DVC) is missing or names another
    fingerprint."""
    names = [n for n, p in decls.platforms.items() if isinstance(p, kind)]
    datasets = [d.name for d in decls.datasets if dataset in (None, d.name)]
    if not names or not datasets:
        return []
    rows = conn.execute(
        """SELECT d.name, d.version, p.name
             FROM public.datasets d CROSS JOIN unnest(%s::text[]) AS p(name)
            WHERE d.status = 'curated' AND d.fingerprint IS NOT NULL
              AND d.name = ANY(%s) AND (%s::text IS NULL OR d.version = %s)
              AND (d.platform_locations -> p.name ->> 'fingerprint') IS DISTINCT FROM d.fingerprint""",
        (names, datasets, version, version),
    ).fetchall()
    return sorted(
        ((r[0], r[1], r[2]) for r in rows), key=lambda r: (r[0], version_sort_key(r[1]), r[2])
    )
