"""The archive tier: a curated version as one Parquet file in the drive.

`archive_version` exports the version's partition with all its governance columns as a
reproducible Parquet file (`copies.export`, streamed through a spooled temporary file), uploads it to
`<archive folder>/<dataset>/<version>/dynamic-assets_dataset_<dataset>-<version>_<fp12>_archive.parquet`
(through the drive's upload session when it has one), then verifies the copy before anything is
dropped: the file is read back from the drive, its SHA-256 compared with the one written, its
rows loaded into a table beside the partition and their row count and content digest compared
with the version's fingerprint record (`copies.load`). Only
then is the partition dropped, in one transaction with the registry row's `tier` and
`platform_locations.archive` (path, sha256, size, rows). A process killed at any moment leaves the
version in core or in the archive, never in neither; the next pass starts over.

`read_archived` reads an archived version from the drive without restoring it (the file's SHA-256
checked against the one recorded when it was archived); `restore_version` loads it back into
core, verified against the fingerprint like an archive.

A version of a sensitive dataset is archived encrypted (`lifecycle.encryption`: an AES-256-GCM
envelope around the Parquet file, `..._archive.parquet.enc`, under `DYNAMIC_ASSETS_ARCHIVE_KEY`;
the registry records the envelope's format and key id, never the key); without the key it stays
in core. The export writes the Parquet bytes through the encrypting writer (the plaintext never
reaches the spool, which may spill to local disk); reading, verifying and restoring decrypt it
chunk by chunk as the Parquet reader asks for bytes (`encryption.open_envelope`), in memory only.
"""

from __future__ import annotations

import functools
import hashlib
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, cast

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql
from psycopg.types.json import Jsonb

from dynamic_assets.copies.export import GOVERNANCE, SPOOL_BYTES, ExportError, export_version
from dynamic_assets.copies.load import (
    ContentCheck,
    CopyError,
    check_content,
    check_copy,
    load_copy,
    scratch_table,
)
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
from dynamic_assets.drive.base import Drive
from dynamic_assets.lifecycle import encryption
from dynamic_assets.provenance.fingerprint import FingerprintError

if TYPE_CHECKING:
    from dynamic_assets.provenance.checks import ArchiveCopy, ArchiveReader

CHUNK = 1024 * 1024
Step = Callable[[str], None]


class ArchiveError(RuntimeError):
    """A version could not be archived, read from the archive or restored; the message names the
    version and the tier, and nothing was dropped anywhere."""


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


def archive_name(dataset: str, version: str, fingerprint: str, *, encrypted: bool = False) -> str:
    name = f"dynamic-assets_dataset_{dataset}-{version}_{fingerprint[:12]}_archive.parquet"
    return f"{name}.enc" if encrypted else name


def archive_path(
    folder: str, dataset: str, version: str, fingerprint: str, *, encrypted: bool = False
) -> str:
    name = archive_name(dataset, version, fingerprint, encrypted=encrypted)
    return f"{folder}/{dataset}/{version}/{name}"


def _keys(where: str) -> encryption.ArchiveKeys:
    try:
        return encryption.archive_keys()
    except encryption.EncryptionError as exc:
        raise ArchiveError(f"{where}: {exc}") from None


@contextmanager
def _plaintext(
    spool: IO[bytes], encrypted: dict[str, Any] | None, where: str, path: str
) -> Iterator[IO[bytes]]:
    """The Parquet bytes of an archive file read into `spool`: the spool itself, or, for an
    encrypted archive, its plaintext decrypted chunk by chunk as it is read (in memory, never
    written anywhere)."""
    if not encrypted:
        yield spool
        return
    keys = _keys(where)
    try:
        plain = encryption.open_envelope(spool, keys)
    except encryption.EncryptionError as exc:
        raise ArchiveError(f"{where}: the archive file {path} {exc}; nothing was changed") from None
    with plain:
        yield cast(IO[bytes], plain)


def upload_file(drive: Drive, path: str, spool: IO[bytes], size: int) -> None:
    """`spool`'s `size` bytes to the drive's `path`, replacing a file there (through an upload
    session where the drive has one)."""
    spool.seek(0)
    upload = getattr(drive, "upload", None)
    if upload is not None:
        upload(path, spool, size, overwrite=True)
    else:
        drive.write_bytes(path, spool.read(), overwrite=True)


def download_file(drive: Drive, path: str, where: str) -> tuple[IO[bytes], str]:
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


def _copy_error(reg: Registered, exc: CopyError | FingerprintError) -> ArchiveError:
    if isinstance(exc, CopyError):
        return ArchiveError(f"{reg.where} (archive tier): the archive file {exc}")
    return ArchiveError(f"{reg.where} (archive tier): cannot digest the copy: {exc}")


def _check_matches(reg: Registered, check: ContentCheck) -> None:
    """Raise ArchiveError unless the copy has the row count and the content digest of the
    version's fingerprint record."""
    if not check.ok:
        raise ArchiveError(
            f"{reg.where} (archive tier): the copy does not match the version's fingerprint "
            f"{reg.fingerprint} ({check.rows} rows, digest {check.digest[:16]}…; the fingerprint "
            f"records {check.want_rows} rows, digest {check.want_digest[:16]}…)"
        )


def verify_copy(
    db: Database,
    reg: Registered,
    drive: Drive,
    path: str,
    sha256: str,
    encrypted: dict[str, Any] | None = None,
) -> None:
    """Read the archive file back from the drive and check it against what was written (its
    SHA-256) and against the version's fingerprint (row count and content digest, recomputed
    from the file's rows as it is read: `copies.load.check_copy`); nothing is kept."""
    where = f"{reg.where} (archive tier)"
    spool, got = download_file(drive, path, where)
    with spool:
        if got != sha256:
            raise ArchiveError(
                f"{where}: {path} read back from the drive differs from the "
                "file written (SHA-256); nothing was dropped"
            )
        assert reg.record is not None
        with _plaintext(spool, encrypted, where, path) as plain:
            try:
                check = check_copy(db, reg.dataset, reg.version, reg.columns, reg.record, plain)
            except (CopyError, FingerprintError) as exc:
                raise _copy_error(reg, exc) from None
        _check_matches(reg, check)


@dataclass(frozen=True)
class Archived:
    dataset: str
    version: str
    path: str
    sha256: str
    size_bytes: int
    rows: int
    encryption: dict[str, str] | None = None


def archive_version(
    db: Database,
    drive: Drive,
    folder: str,
    dataset: str,
    version: str,
    *,
    step: Step | None = None,
    source: Database | None = None,
) -> Archived | None:
    """Move one curated version from core to the archive (see the module), or, with `source`
    (the main tier's database), from main. Returns None when the version is no longer in that
    tier. `step(name)` is called after `exported`, `uploaded`, `verified` and `dropped`."""
    step = step or (lambda _name: None)
    rows_db = source or db
    with db.connect(autocommit=True) as lock_conn, version_lock(lock_conn, dataset, version):
        with db.connect() as conn:
            reg = registered(conn, dataset, version)
        if reg.tier != ("core" if source is None else "main"):
            return None
        key = None
        if reg.sensitive:
            key = _keys(f"{reg.where} (core tier)").current
            if key is None:
                raise ArchiveError(
                    f"{reg.where} (core tier) belongs to a sensitive dataset: its archive is "
                    f"encrypted at rest and {encryption.KEY_ENV} is not set; it stays in core"
                )
        if not reg.fingerprint or not reg.record:
            raise ArchiveError(
                f"{reg.where} (core tier) has no fingerprint yet: a version is archived only "
                "against its fingerprint (materialize its fingerprint first)"
            )
        path = archive_path(folder, dataset, version, reg.fingerprint, encrypted=key is not None)
        seal = None if key is None else functools.partial(encryption.SealingWriter, key=key)
        sealed = None
        if key is not None:
            sealed = {"format": encryption.FORMAT_NAME, "key_id": encryption.key_id(key)}
        tier = "core" if source is None else "main"
        try:
            with export_version(
                rows_db, dataset, version, reg.columns, governance=GOVERNANCE, seal=seal
            ) as exported:
                file, sha256, size = exported.file, exported.sha256, exported.size_bytes
                step("exported")
                if exported.rows != int(reg.record["rows"]["count"]):
                    raise ArchiveError(
                        f"{reg.where} ({tier} tier): {exported.rows} rows exported, the fingerprint "
                        f"records {reg.record['rows']['count']}; nothing was archived"
                    )
                try:
                    upload_file(drive, path, file, size)
                except OSError as exc:
                    raise ArchiveError(
                        f"{reg.where} (archive tier): uploading {path} failed: {exc}"
                    ) from None
        except ExportError as exc:
            raise ArchiveError(
                f"{reg.where} ({tier} tier): reading its rows failed: {exc}; nothing was archived"
            ) from None
        step("uploaded")
        verify_copy(rows_db, reg, drive, path, sha256, sealed)
        step("verified")
        archived = Archived(dataset, version, path, sha256, size, exported.rows, sealed)
        with db.connect() as conn, conn.transaction():
            if source is None:
                _drop_partition(conn, dataset, version)
            _record_tier(conn, reg, "archive", archived, drop_postgres=True)
        if source is not None:
            # After the registry's record: a process killed before this leaves a partition on
            # main that no version refers to, never a version in no tier.
            with source.connect() as conn, conn.transaction():
                _drop_partition(conn, dataset, version)
        step("dropped")
        return archived


def _drop_partition(conn: psycopg.Connection, dataset: str, version: str) -> None:
    dataset_lock(conn, CURATED_SCHEMA, dataset)
    part = partition_name(dataset, version)
    if partition_exists(conn, CURATED_SCHEMA, part):
        conn.execute(
            sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
                ident(CURATED_SCHEMA, dataset), ident(CURATED_SCHEMA, part)
            )
        )
        conn.execute(sql.SQL("DROP TABLE {}").format(ident(CURATED_SCHEMA, part)))


def _record_tier(
    conn: psycopg.Connection,
    reg: Registered,
    tier: str,
    archived: Archived | None,
    *,
    drop_postgres: bool,
) -> None:
    locations = dict(reg.locations)
    locations.pop("main", None)
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
        if archived.encryption:
            locations["archive"]["encryption"] = archived.encryption
    conn.execute(
        "UPDATE public.datasets SET tier = %s, platform_locations = %s, updated_at = now() "
        "WHERE name = %s AND version = %s AND status = 'curated'",
        (tier, Jsonb(locations), reg.dataset, reg.version),
    )


def _archived_file(drive: Drive, reg: Registered, refusal: str) -> tuple[dict[str, Any], IO[bytes]]:
    """The version's archive record and its file read from the drive into a spooled temporary
    file (the caller closes it); ArchiveError, ending with `refusal`, unless the file's SHA-256
    is the one recorded when it was archived."""
    found = reg.archive
    if reg.tier != "archive" or not found:
        raise ArchiveError(f"{reg.where} is in the {reg.tier} tier, not in the archive")
    if found.get("fingerprint") != reg.fingerprint:
        raise ArchiveError(
            f"{reg.where} (archive tier): the archive file was written for fingerprint "
            f"{found.get('fingerprint')}, the version's is {reg.fingerprint}"
        )
    spool, got = download_file(drive, found["path"], f"{reg.where} (archive tier)")
    if got != found["sha256"]:
        spool.close()
        raise ArchiveError(
            f"{reg.where} (archive tier): {found['path']} is not the file archived for "
            f"fingerprint {reg.fingerprint} (its SHA-256 differs): it was altered or "
            f"truncated; {refusal}"
        )
    return found, spool


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
    found, spool = _archived_file(drive, reg, "refusing to read it")
    where = f"{reg.where} (archive tier)"
    with spool, _plaintext(spool, found.get("encryption"), where, found["path"]) as plain:
        try:
            table = pq.read_table(plain, columns=columns)
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
        found, spool = _archived_file(drive, reg, "nothing was restored")
        where = f"{reg.where} (archive tier)"
        with spool, _plaintext(spool, found.get("encryption"), where, found["path"]) as plain:
            table = scratch_table(dataset, version)
            assert reg.record is not None
            with db.connect() as conn, conn.transaction():
                try:
                    rows = load_copy(conn, dataset, version, reg.columns, plain, table)
                    check = check_content(conn, dataset, version, reg.record, table)
                except (CopyError, FingerprintError) as exc:
                    raise _copy_error(reg, exc) from None
                _check_matches(reg, check)
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


def archive_reader(db: Database, drive: Drive) -> ArchiveReader:
    """What the verifier reads an archived version with: its archive file downloaded from the
    drive, its SHA-256 compared with the one recorded when it was archived, and its rows loaded
    beside the version's partition and digested against the fingerprint `record` (whatever the
    SHA-256 says: the digest is what proves the rows); nothing is kept."""
    # The verifier's module (with its TON and HTTP clients) only here, not in an archiving process.
    from dynamic_assets.provenance.checks import ArchiveCopy

    def read(dataset: str, version: str, record: dict[str, Any]) -> ArchiveCopy:
        with db.connect() as conn:
            reg = registered(conn, dataset, version)
        found = reg.archive
        if reg.tier != "archive" or not found:
            raise ArchiveError(f"{reg.where} is in the {reg.tier} tier, not in the archive")
        where = f"{reg.where} (archive tier)"
        spool, sha256 = download_file(drive, found["path"], where)
        same = sha256 == found["sha256"]
        with spool:
            try:
                with _plaintext(spool, found.get("encryption"), where, found["path"]) as plain:
                    check = check_copy(db, dataset, version, reg.columns, record, plain)
            except (CopyError, FingerprintError, ArchiveError) as exc:
                return ArchiveCopy(found["path"], same, problem=str(exc))
        return ArchiveCopy(found["path"], same, check.rows, check.digest)

    return read


def archived_versions(conn: psycopg.Connection) -> Iterator[tuple[str, str, dict]]:
    for name, version, locations in conn.execute(
        "SELECT name, version, platform_locations FROM public.datasets "
        "WHERE status = 'curated' AND tier = 'archive' ORDER BY name, version"
    ).fetchall():
        yield name, version, dict(locations or {})
