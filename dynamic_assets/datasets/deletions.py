"""Files deleted from the drive after they were recorded, found from a listing.

A listing of a folder (`discovery.discover`) holds every item below it, so a file recorded under
that folder as present (`registry.ACTIVE`, or passed over) that the listing does not hold is gone:
its `onedrive_ingest` row is marked `deleted` with the time (`registry.mark_deleted`). On
OneDrive the delta feed marks deleted items the same way (`drive.changes`); both end here.

A curated version still holds the rows of every file deleted after it was curated. With files
left, it is outstanding: the pipeline curates it again from those files (new fingerprint, new
attestation), after which the deletions are behind it. With no file left, its curated rows are
kept (the drive is not a reason to drop audited data): the version is reported, here for
`dynamic-assets run` and by `quality.status` for `dynamic-assets status`, until files return.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg

from dynamic_assets.datasets import registry
from dynamic_assets.drive.discovery import Discovery, Problem

DELETED = "deleted from the drive"
RECURATED = "its version is curated again from the files that remain"
EMPTIED = "every source file was deleted from the drive; its curated rows are kept"


def settle_deletions(conn: psycopg.Connection, found: Discovery) -> set[str]:
    """Mark the recorded files `found`'s listing no longer holds `deleted`, report each deletion
    in `found.deleted`, and return the versions (`dataset/version`) to curate again because a
    file of theirs was deleted after they were curated and files remain."""
    newly = {row[0]: row for row in _mark_gone(conn, found)}
    behind = registry.deleted_since_curated(conn)
    in_scope = {vf.key for vf in found.versions.values() if vf.files or vf.rejected}
    recurate: set[str] = set()
    emptied: dict[str, tuple[str, str]] = {}
    reported: set[str] = set()
    for ds, ver, path, deleted_at, files_left in behind:
        key = f"{ds}/{ver}"
        if files_left and key in in_scope:
            recurate.add(key)
            found.deleted.append(_file(ds, ver, path, deleted_at, RECURATED))
            reported.add(path)
        elif not files_left and _within(found, path):
            emptied[key] = (ds, ver)
    for _id, path, ds, ver, deleted_at in newly.values():
        if path not in reported:
            found.deleted.append(_file(ds, ver, path, deleted_at, None))
    for key, (ds, ver) in sorted(emptied.items()):
        found.deleted.append(Problem(f"datasets/{key}", EMPTIED, "deleted", ds, ver))
    return recurate


def _within(found: Discovery, path: str) -> bool:
    """Whether `found` is a listing that covers `path`."""
    return found.listed is not None and path.startswith(found.listed.rstrip("/") + "/")


def _mark_gone(conn: psycopg.Connection, found: Discovery) -> list[tuple]:
    """Mark `deleted` the files recorded under the listed folder that the listing lacks."""
    if found.listed is None:
        return []
    prefix = found.listed.rstrip("/") + "/"
    rows = conn.execute(
        """SELECT id, path FROM public.onedrive_ingest
            WHERE left(path, length(%s)) = %s AND status = ANY(%s)""",
        (prefix, prefix, [*registry.ACTIVE, *registry.NOT_TAKEN]),
    ).fetchall()
    gone = [file_id for file_id, path in rows if path not in found.paths]
    if not gone:
        return []
    return registry.mark_deleted(conn, gone, DELETED)


def _file(
    dataset: str | None, version: str | None, path: str, at: datetime, then: str | None
) -> Problem:
    when = f"{DELETED} (found {at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC)"
    return Problem(path, f"{when}; {then}" if then else when, "deleted", dataset, version)
