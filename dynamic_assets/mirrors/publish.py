"""Mirror one curated version to one declared S3 platform, and record where it lives.

The version is exported as Parquet (`export.export_version`), uploaded under its deterministic
key unless the object already holds those bytes (`s3.put_file`), the dataset's `latest` pointer
follows when the version is the dataset's current one, and `datasets.platform_locations.<name>`
records `{"url", "sha256", "size_bytes", "fingerprint"}`. The object itself is recorded once in
`public.mirror_objects` (platform, key, SHA-256, size, fingerprint, the store's ETag) and as one
signed ledger entry whose leaf carries the version's fingerprint and the object; placing the same
bytes again records nothing. Any failure of the store is a `MirrorError` naming platform, dataset
and version, kept in `public.mirror_failures` until the mirror next succeeds (`status` shows it).
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
from dynamic_assets.provenance import ledger, merkle
from dynamic_assets.provenance.signing import SigningKey


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


def record_failure(db: Database, name: str, dataset: str, version: str, reason: str) -> None:
    """Keep the mirror's last failure of the version (its reason names no credential)."""
    with db.connect() as conn:
        conn.execute(
            """INSERT INTO public.mirror_failures (platform, dataset, version, reason)
               VALUES (%s, %s, %s, %s)
               ON CONFLICT (platform, dataset, version)
               DO UPDATE SET reason = EXCLUDED.reason, failed_at = now()""",
            (name, dataset, version, reason),
        )


def object_leaf(
    name: str, dataset: str, version: str, fingerprint: str, placed: s3.Placed
) -> dict[str, Any]:
    """The ledger leaf of a mirrored object: the version's fingerprint leaf and the object."""
    return {
        "dataset": dataset,
        "version": version,
        "fingerprint": fingerprint,
        "mirror": {
            "platform": name,
            "key": placed.key,
            "sha256": placed.sha256,
            "size_bytes": placed.size_bytes,
        },
    }


def record_object(
    conn: psycopg.Connection,
    name: str,
    dataset: str,
    version: str,
    fingerprint: str,
    placed: s3.Placed,
    etag: str | None,
    signer: SigningKey | None,
    *,
    model: str | None = None,
    run_id: str | None = None,
) -> int | None:
    """Record the object once (platform, key, SHA-256) with a signed ledger entry; the entry's
    sequence number, or None when the object was already in the ledger (or no signer was given:
    the next mirror with one writes its entry). A model checkpoint's object names its `model` and
    `run_id` (in the row and the leaf); `dataset`, `version` and `fingerprint` are then those of
    the data the run was trained on."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ledger.LEDGER_LOCK,))
        row = conn.execute(
            "SELECT id, ledger_seq FROM public.mirror_objects "
            "WHERE platform = %s AND object_key = %s AND sha256 = %s",
            (name, placed.key, placed.sha256),
        ).fetchone()
        if row is not None and (row[1] is not None or signer is None):
            return None
        seq = None
        if signer is not None:
            leaf = object_leaf(name, dataset, version, fingerprint, placed)
            if model is not None:
                leaf = {"model": model, "run_id": run_id, **leaf}
            root = merkle.root(ledger.leaf_hashes([leaf])).hex()
            seq = ledger.append(conn, root, [leaf], signer).seq
        if row is not None:
            conn.execute(
                "UPDATE public.mirror_objects SET ledger_seq = %s WHERE id = %s", (seq, row[0])
            )
        else:
            conn.execute(
                """INSERT INTO public.mirror_objects
                       (platform, dataset, version, object_key, sha256, size_bytes, fingerprint,
                        etag, ledger_seq, model, run_id)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                (
                    name,
                    dataset,
                    version,
                    placed.key,
                    placed.sha256,
                    placed.size_bytes,
                    fingerprint,
                    etag,
                    seq,
                    model,
                    run_id,
                ),
            )
        return seq


def known_object(conn: psycopg.Connection, name: str, placed: s3.Placed) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM public.mirror_objects "
            "WHERE platform = %s AND object_key = %s AND sha256 = %s",
            (name, placed.key, placed.sha256),
        ).fetchone()
        is not None
    )


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
    signer: SigningKey | None = None,
) -> Mirrored:
    """Mirror `dataset` `version` to the S3 platform `name`; `signer` signs the ledger entry of
    an object placed for the first time. A failure is kept for `status` and raised."""
    try:
        return _mirror_version(
            db,
            decls,
            dataset,
            version,
            name,
            environ=environ,
            multipart_threshold=multipart_threshold,
            multipart_chunk=multipart_chunk,
            signer=signer,
        )
    except s3.MirrorError as exc:
        record_failure(db, name, dataset, version, str(exc))
        raise


def _mirror_version(
    db: Database,
    decls: Declarations,
    dataset: str,
    version: str,
    name: str,
    *,
    environ: Mapping[str, str] | None,
    multipart_threshold: int,
    multipart_chunk: int,
    signer: SigningKey | None,
) -> Mirrored:
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
            known = known_object(conn, name, placed)
        etag = None if known else (s3.head(client, platform.bucket, key) or {}).get("ETag")
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
        if not store_error(exc):
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
        conn.execute(
            "DELETE FROM public.mirror_failures "
            "WHERE platform = %s AND dataset = %s AND version = %s",
            (name, dataset, version),
        )
        record_object(conn, name, dataset, version, fingerprint, placed, etag, signer)
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
        if not store_error(exc):
            raise
        raise s3.MirrorError(
            f"mirror {name}: {dataset} {version} (s3://{platform.bucket}/{platform.prefix}): "
            f"latest not moved: {s3.refusal(exc)}"
        ) from None
    return Pointed(name, dataset, version, entry["url"], moved)


def store_error(exc: BaseException) -> bool:
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
