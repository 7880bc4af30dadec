"""Archives of sensitive datasets kept encrypted when the declaration changes after they were
written: a dataset declared `sensitive` once some of its versions were archived in plaintext.

Each pass first brings the registry's `sensitivity` of a dataset declared sensitive in line with
the declaration (never the other way: a version curated as sensitive stays so), so that a later
archive of any of its versions is encrypted (`archive.archive_version` reads it there). Then each
archived version of a sensitive dataset whose archive is plaintext is sealed (`reseal_version`):
the recorded file is read from the drive and checked against its recorded SHA-256, its
AES-256-GCM envelope (`lifecycle.encryption`) uploaded beside it as `<path>.enc`, read back and
verified against the version's fingerprint (`archive.verify_copy`, decrypting it); only then does
the registry point at the sealed file (noting the plaintext one it `replaces`), and then the
plaintext file is deleted from the drive and the note removed. A process killed at any step
leaves the registry pointing at a file that exists; the next pass finishes the deletion.

Without a key (`DYNAMIC_ASSETS_ARCHIVE_KEY`) such a version is reported as a problem: nothing is
changed and the plaintext file stays until a key is configured."""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from dynamic_assets.copies.export import SPOOL_BYTES
from dynamic_assets.db import Database
from dynamic_assets.db.tables import version_lock
from dynamic_assets.declarations.model import Declarations
from dynamic_assets.drive.base import Drive
from dynamic_assets.lifecycle import encryption
from dynamic_assets.lifecycle.archive import (
    ArchiveError,
    Step,
    download_file,
    registered,
    upload_file,
    verify_copy,
)

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Resealed:
    dataset: str
    version: str
    path: str
    key_id: str


def declared_sensitive(decls: Declarations) -> list[str]:
    return [d.name for d in decls.datasets if d.sensitivity == "sensitive"]


def mark_sensitive(conn: psycopg.Connection, decls: Declarations) -> None:
    """The registry rows of every dataset declared sensitive marked sensitive (and not public)."""
    conn.execute(
        "UPDATE public.datasets SET sensitivity = 'sensitive', is_public = false "
        "WHERE name = ANY(%s) AND sensitivity IS DISTINCT FROM 'sensitive'",
        (declared_sensitive(decls),),
    )


def plaintext_archives(conn: psycopg.Connection, decls: Declarations) -> list[tuple[str, str, str]]:
    """(dataset, version, path) of each archived version of a sensitive dataset (in the registry
    or in the declarations) whose archive file is not encrypted."""
    rows = conn.execute(
        "SELECT name, version, platform_locations -> 'archive' ->> 'path' FROM public.datasets "
        "WHERE status = 'curated' AND tier = 'archive' "
        "AND (sensitivity = 'sensitive' OR name = ANY(%s)) "
        "AND platform_locations -> 'archive' ->> 'path' IS NOT NULL "
        "AND platform_locations -> 'archive' -> 'encryption' IS NULL "
        "ORDER BY name, version",
        (declared_sensitive(decls),),
    ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def replaced_archives(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """Versions (curated, or deleted by policy since) whose sealed archive still notes a
    plaintext file to delete."""
    rows = conn.execute(
        "SELECT name, version FROM public.datasets "
        "WHERE platform_locations -> 'archive' ->> 'replaces' IS NOT NULL ORDER BY name, version"
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def plaintext_problem(dataset: str, version: str, path: str) -> str:
    return (
        f"{dataset} {version} (archive tier): archived in plaintext at {path} before the dataset "
        f"was declared sensitive, and {encryption.KEY_ENV} is not set: it stays plaintext in the "
        "drive until the key is set and a lifecycle pass encrypts it"
    )


def _set_archive(conn: psycopg.Connection, dataset: str, version: str, found: dict) -> None:
    conn.execute(
        "UPDATE public.datasets SET platform_locations = "
        "jsonb_set(platform_locations, '{archive}', %s), updated_at = now() "
        "WHERE name = %s AND version = %s AND status = 'curated' AND tier = 'archive'",
        (Jsonb(found), dataset, version),
    )


def reseal_version(
    db: Database,
    drive: Drive,
    dataset: str,
    version: str,
    key: bytes | None,
    *,
    step: Step | None = None,
) -> Resealed | None:
    """Seal one plaintext archive (see the module); None when it is not a plaintext archive
    any more. `step(name)` is called after `uploaded`, `verified`, `recorded` and `removed`."""
    step = step or (lambda _name: None)
    with db.connect(autocommit=True) as lock_conn, version_lock(lock_conn, dataset, version):
        with db.connect() as conn:
            reg = registered(conn, dataset, version)
        found: dict[str, Any] | None = reg.archive
        if reg.tier != "archive" or not found or found.get("encryption"):
            return None
        where = f"{reg.where} (archive tier)"
        plain_path = str(found["path"])
        if key is None:
            raise ArchiveError(plaintext_problem(dataset, version, plain_path))
        if found.get("fingerprint") != reg.fingerprint or not reg.record:
            raise ArchiveError(
                f"{where}: the archive file was written for fingerprint "
                f"{found.get('fingerprint')}, the version's is {reg.fingerprint}; not encrypted"
            )
        sealed_path = f"{plain_path}.enc"
        plain, got = download_file(drive, plain_path, where)
        with plain, tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as sealed:
            if got != found["sha256"]:
                raise ArchiveError(
                    f"{where}: {plain_path} is not the file archived for fingerprint "
                    f"{reg.fingerprint} (its SHA-256 differs); not encrypted, nothing was changed"
                )
            kid = encryption.encrypt_stream(plain, sealed, key)
            size = sealed.tell()
            sealed.seek(0)
            sha256 = hashlib.file_digest(sealed, "sha256").hexdigest()
            try:
                upload_file(drive, sealed_path, sealed, size)
            except OSError as exc:
                raise ArchiveError(f"{where}: uploading {sealed_path} failed: {exc}") from None
        step("uploaded")
        record = {"format": encryption.FORMAT_NAME, "key_id": kid}
        verify_copy(db, reg, drive, sealed_path, sha256, record)
        step("verified")
        now_sealed = {
            **found,
            "path": sealed_path,
            "sha256": sha256,
            "size_bytes": size,
            "encryption": record,
            "replaces": plain_path,
        }
        with db.connect() as conn, conn.transaction():
            _set_archive(conn, dataset, version, now_sealed)
        step("recorded")
        remove_replaced(db, drive, dataset, version)
        step("removed")
        return Resealed(dataset, version, sealed_path, kid)


def remove_replaced(db: Database, drive: Drive, dataset: str, version: str) -> None:
    """Delete the plaintext file a sealed archive replaces, then the registry's note of it."""
    where = f"{dataset} {version} (archive tier)"
    with db.connect() as conn:
        row = conn.execute(
            "SELECT platform_locations -> 'archive' FROM public.datasets "
            "WHERE name = %s AND version = %s",
            (dataset, version),
        ).fetchone()
    found = row[0] if row else None
    if not found or not found.get("replaces") or not found.get("encryption"):
        return
    old = str(found["replaces"])
    delete = getattr(drive, "delete", None)
    if delete is None:
        raise ArchiveError(
            f"{where}: the {drive.kind} drive cannot delete the plaintext file {old}"
        )
    try:
        delete(old)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ArchiveError(f"{where}: cannot delete the plaintext file {old}: {exc}") from None
    rest = {k: v for k, v in found.items() if k != "replaces"}
    with db.connect() as conn, conn.transaction():
        conn.execute(
            "UPDATE public.datasets SET platform_locations = "
            "jsonb_set(platform_locations, '{archive}', %s), updated_at = now() "
            "WHERE name = %s AND version = %s AND platform_locations ? 'archive'",
            (Jsonb(rest), dataset, version),
        )


@dataclass
class Sealing:
    resealed: list[Resealed]
    problems: list[str]
    failed: list[str]


def seal_plaintext_archives(
    db: Database, drive: Drive, decls: Declarations, *, dry_run: bool = False
) -> Sealing:
    """The pass's part (see the module): returns the versions sealed, those left in plaintext
    for want of a key (problems) and those that could not be sealed (failed)."""
    done = Sealing([], [], [])
    with db.connect() as conn:
        if not dry_run:
            mark_sensitive(conn, decls)
        found = plaintext_archives(conn, decls)
        leftovers = [] if dry_run else replaced_archives(conn)
    for dataset, version in leftovers:
        try:
            remove_replaced(db, drive, dataset, version)
        except ArchiveError as exc:
            done.failed.append(str(exc))
    if not found:
        return done
    try:
        key = encryption.archive_keys().current
    except encryption.EncryptionError as exc:
        done.problems.extend(
            f"{d} {v} (archive tier): archived in plaintext at {p}; not encrypted: {exc}"
            for d, v, p in found
        )
        return done
    for dataset, version, path in found:
        if key is None:
            done.problems.append(plaintext_problem(dataset, version, path))
            continue
        if dry_run:
            continue
        try:
            sealed = reseal_version(db, drive, dataset, version, key)
        except ArchiveError as exc:
            done.failed.append(str(exc))
            continue
        if sealed is not None:
            done.resealed.append(sealed)
    return done
