"""The registry tables: `onedrive_ingest` (files seen), `datasets` (curated versions), `etl_runs`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from psycopg.types.json import Jsonb

from dynamic_assets.db.connection import scalar
from dynamic_assets.declarations.model import Dataset
from dynamic_assets.declarations.names import version_sort_key
from dynamic_assets.drive.base import DriveItem

ACTIVE = ("pending", "staged", "curated", "quarantined")
# Files the pipeline passed over (a dataset not declared, a file outside a version folder): the
# verdict no longer holds once the manifest of a declared version takes the file.
NOT_TAKEN = ("undeclared", "ignored")


def _item_values(item: DriveItem) -> tuple:
    """The drive's facts about one file: drive_item_id, path, name, size_bytes, quick_xor_hash,
    etag, ctag, modified_at, modified_by, sha256 (the column order of the inserts below)."""
    return (
        item.item_id,
        item.path,
        item.name,
        item.size,
        item.hashes.get("quickXorHash"),
        item.etag,
        item.ctag,
        item.modified_at,
        item.modified_by,
        item.hashes.get("sha256Hash"),
    )


def record_file(
    conn: psycopg.Connection,
    dataset: str | None,
    version: str | None,
    item: DriveItem,
    fmt: str | None,
) -> int:
    """The `onedrive_ingest` id of this exact file content, creating its row the first time.

    A file recorded before as passed over (`NOT_TAKEN`: its dataset was not declared then), or
    without its dataset or version, or recorded `deleted` and now back in the drive, is taken
    like a new file: its row gets the dataset, version and format, and `pending`."""
    new_id = int(
        scalar(
            conn,
            """INSERT INTO public.onedrive_ingest
                   (dataset, version, file_format, drive_item_id, path, name, size_bytes,
                    quick_xor_hash, etag, ctag, modified_at, modified_by, sha256)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (drive_item_id, etag) DO UPDATE
                  SET path = EXCLUDED.path, name = EXCLUDED.name, updated_at = now()
               RETURNING id""",
            (dataset, version, fmt, *_item_values(item)),
        )
    )
    if fmt is not None:
        conn.execute(
            """UPDATE public.onedrive_ingest
                  SET dataset = %s, version = %s, file_format = %s, status = 'pending',
                      error = NULL, deleted_at = NULL, updated_at = now()
                WHERE id = %s
                  AND (status = ANY(%s) OR dataset IS NULL OR version IS NULL)""",
            (dataset, version, fmt, new_id, [*NOT_TAKEN, "deleted"]),
        )
    return new_id


def record_problem(
    conn: psycopg.Connection,
    *,
    path: str,
    reason: str,
    status: str,
    dataset: str | None = None,
    version: str | None = None,
    item: DriveItem | None = None,
) -> int:
    """Record a file (or folder) the pipeline will not take, with the reason.

    Whether a dataset is declared belongs to the configuration, not to its files: `undeclared`
    is recorded for a file first seen without a declaration, and never replaces what was
    recorded for the file under one (a config that leaves the dataset out keeps its history)."""
    if item is None:
        item = DriveItem(
            item_id="path-"
            + hashlib.sha1(path.encode("utf-8", "surrogateescape")).hexdigest()[:20],
            path=path,
            name=path.rsplit("/", 1)[-1],
            is_folder=True,
            size=0,
            modified_at=datetime.now(UTC),
            etag="-",
        )
    new_id = scalar(
        conn,
        """INSERT INTO public.onedrive_ingest AS f
               (dataset, version, status, error, drive_item_id, path, name, size_bytes,
                quick_xor_hash, etag, ctag, modified_at, modified_by, sha256)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (drive_item_id, etag) DO UPDATE
              SET path = EXCLUDED.path, name = EXCLUDED.name, updated_at = now(),
                  dataset = CASE WHEN EXCLUDED.status = 'undeclared' AND f.status <> 'undeclared'
                                 THEN f.dataset ELSE EXCLUDED.dataset END,
                  version = CASE WHEN EXCLUDED.status = 'undeclared' AND f.status <> 'undeclared'
                                 THEN f.version ELSE EXCLUDED.version END,
                  error = CASE WHEN EXCLUDED.status = 'undeclared' AND f.status <> 'undeclared'
                               THEN f.error ELSE EXCLUDED.error END,
                  status = CASE WHEN EXCLUDED.status = 'undeclared' AND f.status <> 'undeclared'
                                THEN f.status ELSE EXCLUDED.status END
           RETURNING id""",
        (dataset, version, status, reason, *_item_values(item)),
    )
    return int(new_id)


def record_problems(conn: psycopg.Connection, problems: Iterable) -> None:
    """Record each `discovery.Problem` (a file or folder the pipeline will not take)."""
    for p in problems:
        record_problem(
            conn,
            path=p.path,
            reason=p.reason,
            status=p.status,
            dataset=p.dataset,
            version=p.version,
            item=p.item,
        )


def mark_files(
    conn: psycopg.Connection,
    ids: Iterable[int],
    status: str,
    *,
    error: str | None = None,
) -> None:
    conn.execute(
        "UPDATE public.onedrive_ingest SET status = %s, error = %s, updated_at = now() WHERE id = ANY(%s)",
        (status, error, list(ids)),
    )


def hold_back(conn: psycopg.Connection, dataset: str, version: str, failed: Iterable[str]) -> None:
    """Say on each file of the version still waiting (`pending` or `staged`) that the version
    is held back by the files that failed, named by path."""
    paths = sorted(failed)
    if not paths:
        return
    others = "another file" if len(paths) == 1 else "other files"
    conn.execute(
        """UPDATE public.onedrive_ingest SET error = %s, updated_at = now()
            WHERE dataset = %s AND version = %s AND status IN ('pending', 'staged')
              AND NOT (path = ANY(%s))""",
        (
            f"held back: {others} of version {version} failed ({', '.join(paths)})"[:4000],
            dataset,
            version,
            paths,
        ),
    )


def mark_deleted(conn: psycopg.Connection, ids: Iterable[int], reason: str) -> list[tuple]:
    """Record files gone from the drive: status `deleted`, the reason, and the time found
    (`deleted_at`). Returns (id, path, dataset, version, deleted_at) per file marked."""
    return conn.execute(
        """UPDATE public.onedrive_ingest
              SET status = 'deleted', error = %s, deleted_at = now(), updated_at = now()
            WHERE id = ANY(%s) AND status <> 'deleted'
        RETURNING id, path, dataset, version, deleted_at""",
        (reason, list(ids)),
    ).fetchall()


def deleted_since_curated(conn: psycopg.Connection) -> list[tuple]:
    """Files deleted from the drive after their curated version was last curated, whose rows
    the version therefore still holds: (dataset, version, path, deleted_at, files_left), where
    `files_left` counts the version's files still recorded as present."""
    return conn.execute(
        """SELECT f.dataset, f.version, f.path, f.deleted_at,
                  (SELECT count(*) FROM public.onedrive_ingest a
                    WHERE a.dataset = f.dataset AND a.version = f.version
                      AND a.status = ANY(%s))
             FROM public.onedrive_ingest f
             JOIN public.datasets d ON d.name = f.dataset AND d.version = f.version
            WHERE f.status = 'deleted' AND d.status = 'curated'
              AND f.deleted_at > d.curated_at
              -- files, not the rows of folders recorded by path (ids `path-...`)
              AND f.drive_item_id NOT LIKE 'path-%%'
            ORDER BY f.dataset, f.version, f.path""",
        (list(ACTIVE),),
    ).fetchall()


def mark_loaded(
    conn: psycopg.Connection, file_id: int, *, rows: int, sha256: str, size: int
) -> None:
    conn.execute(
        """UPDATE public.onedrive_ingest
              SET status = 'staged', error = NULL, rows_loaded = %s, sha256 = %s, size_bytes = %s, updated_at = now()
            WHERE id = %s""",
        (rows, sha256, size, file_id),
    )


def version_files(
    conn: psycopg.Connection, dataset: str, version: str, ids: list[int]
) -> list[dict]:
    rows = conn.execute(
        """SELECT id, path, size_bytes, sha256, etag, rows_loaded, status, error
             FROM public.onedrive_ingest WHERE id = ANY(%s) ORDER BY path""",
        (ids,),
    ).fetchall()
    keys = ("id", "path", "size_bytes", "sha256", "etag", "rows_loaded", "status", "error")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def staged_files(conn: psycopg.Connection, dataset: str, version: str) -> list[dict]:
    """The files of the version's latest staging, each with the rows recorded when it was loaded
    (`mark_loaded`): the files marked `staged`, or, when the version has been curated since its
    latest staging, its `curated` files."""
    rows = conn.execute(
        """SELECT id, path, rows_loaded, status FROM public.onedrive_ingest
            WHERE dataset = %s AND version = %s AND status IN ('staged', 'curated')
              AND rows_loaded IS NOT NULL
            ORDER BY path""",
        (dataset, version),
    ).fetchall()
    latest = "staged" if any(r[3] == "staged" for r in rows) else "curated"
    return [{"id": i, "path": p, "rows_loaded": n} for i, p, n, s in rows if s == latest]


def settle_curated(conn: psycopg.Connection, dataset: str, version: str, ids: list[int]) -> None:
    """The version's current files are curated; earlier contents of its files are superseded."""
    mark_files(conn, ids, "curated")
    conn.execute(
        """UPDATE public.onedrive_ingest SET status = 'superseded', updated_at = now()
            WHERE dataset = %s AND version = %s AND NOT (id = ANY(%s)) AND status = ANY(%s)""",
        (dataset, version, ids, list(ACTIVE)),
    )


def combined_checksum(files: list[dict]) -> str:
    """SHA-256 over the sorted (path, sha256) pairs of a version's files."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f["path"]):
        h.update(f"{f['path']}\x00{f['sha256']}\n".encode())
    return h.hexdigest()


def upsert_dataset(
    conn: psycopg.Connection,
    ds: Dataset,
    version: str,
    *,
    folder: str,
    files: list[dict],
    rows: int,
    drive_kind: str,
) -> int:
    schema = [c.model_dump(exclude_none=True) for c in ds.columns]
    new_id = scalar(
        conn,
        """INSERT INTO public.datasets
               (name, version, description, file_path, platform_locations, checksum, size_bytes,
                row_count, file_count, tags, is_public, sensitivity, schema_version, schema,
                status, curated_at, updated_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'curated', now(), now())
           ON CONFLICT (name, version) DO UPDATE SET
               description = EXCLUDED.description, file_path = EXCLUDED.file_path,
               platform_locations = EXCLUDED.platform_locations, checksum = EXCLUDED.checksum,
               size_bytes = EXCLUDED.size_bytes, row_count = EXCLUDED.row_count,
               file_count = EXCLUDED.file_count, tags = EXCLUDED.tags, is_public = EXCLUDED.is_public,
               sensitivity = EXCLUDED.sensitivity, schema_version = EXCLUDED.schema_version,
               schema = EXCLUDED.schema, status = 'curated', curated_at = now(), updated_at = now(),
               -- new curated rows: the old fingerprint no longer describes them (the fingerprint
               -- asset, next in the same run, computes it again)
               fingerprint = NULL, content_digest = NULL, fingerprint_record = NULL,
               fingerprinted_at = NULL
           RETURNING id""",
        (
            ds.name,
            version,
            ds.description,
            folder,
            Jsonb({drive_kind: folder, "postgres": f"ai_curated.{ds.name}"}),
            combined_checksum(files),
            sum(int(f["size_bytes"] or 0) for f in files),
            rows,
            len(files),
            ds.tags,
            ds.sensitivity == "public",
            ds.sensitivity,
            ds.schema_version,
            Jsonb(schema),
        ),
    )
    return int(new_id)


def registered_versions(conn: psycopg.Connection, dataset: str) -> list[str]:
    """Every version of `dataset` in the `datasets` registry, whatever its status, in version
    order."""
    rows = conn.execute("SELECT version FROM public.datasets WHERE name = %s", (dataset,))
    return sorted((r[0] for r in rows.fetchall()), key=version_sort_key)


def not_registered(conn: psycopg.Connection, dataset: str, version: str, where: str) -> str:
    """`<dataset> <version> is not in <where>`, then the versions that are, or that there is
    none yet."""
    known = registered_versions(conn, dataset)
    return f"{dataset} {version} is not in {where}; " + (
        f"registered versions: {', '.join(known)}"
        if known
        else f"no version of {dataset} is registered yet"
    )


def curated_versions(conn: psycopg.Connection, dataset: str) -> list[str]:
    rows = conn.execute(
        "SELECT version FROM public.datasets WHERE name = %s AND status = 'curated'", (dataset,)
    ).fetchall()
    return sorted((r[0] for r in rows), key=version_sort_key)


def record_etl_run(
    conn: psycopg.Connection,
    *,
    run_id: str | None,
    dataset: str,
    version: str,
    step: str,
    status: str,
    started_at: datetime,
    files: int | None = None,
    rows_loaded: int | None = None,
    rows_rejected: int | None = None,
    bytes_: int | None = None,
    checks: dict | None = None,
    error: str | None = None,
) -> None:
    finished = datetime.now(UTC)
    conn.execute(
        """INSERT INTO public.etl_runs (run_id, dataset, version, step, files, rows_loaded, rows_rejected,
                                        bytes, checks, status, error, started_at, finished_at, duration_s)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            run_id,
            dataset,
            version,
            step,
            files,
            rows_loaded,
            rows_rejected,
            bytes_,
            Jsonb(json.loads(json.dumps(checks or {}, default=str))),
            status,
            error,
            started_at,
            finished,
            (finished - started_at).total_seconds(),
        ),
    )


@dataclass(frozen=True)
class EtlStep:
    """One step of one dataset version as `etl_runs` records it: the run, dataset, version and
    step are bound once, `started_at` when the step began; `record` writes a row per outcome."""

    run_id: str | None
    dataset: str
    version: str
    step: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def record(self, conn: psycopg.Connection, status: str, **counts) -> None:
        """An `etl_runs` row with `status` and the counts, checks or error of `record_etl_run`."""
        record_etl_run(
            conn,
            run_id=self.run_id,
            dataset=self.dataset,
            version=self.version,
            step=self.step,
            status=status,
            started_at=self.started_at,
            **counts,
        )

    @property
    def seconds(self) -> float:
        """Seconds since the step began."""
        return (datetime.now(UTC) - self.started_at).total_seconds()
