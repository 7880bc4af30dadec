"""From a drive's change feed (Microsoft Graph delta) to the dataset versions to run.

Plain functions, no Dagster: the drive sensor calls `plan_changes` on each tick when its drive
offers `delta(link)`. A tick lists only; nothing is downloaded.

- Changed items are classified like a full listing (`discovery.discover` over just those items);
  each affected version folder is then listed on its own (`children`), since a delta page shows
  only what changed, not the unchanged files beside it. A full enumeration (first tick, or a
  resync after `410 Gone`) already holds every file, so nothing is listed again.
- Items with the `deleted` facet mark their `onedrive_ingest` rows `deleted` (by drive item id;
  a deleted folder also marks the files below it). A version left with no files is reported and
  its curated data is kept; a version that lost some files runs again.
- A version runs only if one of its files is not already in `onedrive_ingest` with the same drive
  item id, path and content (eTag, cTag or a hash), so a resync re-ingests nothing unchanged.
- After a complete full enumeration, files the registry still holds as present but the drive no
  longer lists (deleted while no delta link was valid) are marked deleted too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from dynamic_assets.db import Database
from dynamic_assets.declarations.model import Declarations
from dynamic_assets.declarations.names import is_version
from dynamic_assets.drive.base import Drive, DriveItem
from dynamic_assets.drive.discovery import DATASETS_FOLDER, Problem, VersionFolder, discover

DELTA_BUDGET_SECONDS = 40.0  # listing time per tick; the rest of the 60 s budget is for planning
DELETED_REASON = "deleted from the drive"
# A file recorded while its dataset was not declared is not settled: once declared, it is taken.
SETTLED = ("curated", "quarantined", "ignored")


class ListedItems:
    """A `Listing` over items already listed (for classifying a delta page with `discover`)."""

    kind = "listed"

    def __init__(self, items: list[DriveItem]) -> None:
        self._items = items

    def list_tree(self, folder: str) -> Iterator[DriveItem]:
        prefix = folder.strip("/") + "/"
        return (i for i in self._items if i.path.startswith(prefix))

    def describe(self) -> str:
        return f"{len(self._items)} listed item(s)"


@dataclass
class ChangePlan:
    versions: dict[str, VersionFolder] = field(default_factory=dict)  # to run, by dataset/version
    problems: list[Problem] = field(default_factory=list)  # not taken, and not recorded before
    deleted: list[tuple[str, str | None, str | None]] = field(default_factory=list)  # path, ds, ver
    emptied: list[VersionFolder] = field(default_factory=list)  # every file deleted: reported
    unchanged: list[str] = field(default_factory=list)  # already curated exactly as listed
    listed_folders: int = 0


def _same_content(row: dict, item: DriveItem) -> bool:
    if row["etag"] == item.etag:
        return True
    if item.ctag and row["ctag"] == item.ctag:
        return True
    qx = item.hashes.get("quickXorHash")
    if qx and row["quick_xor_hash"] == qx:
        return True
    sha = item.hashes.get("sha256Hash")
    return bool(sha and row["sha256"] and row["sha256"].lower() == sha.lower())


def plan_changes(
    drive: Drive,
    decls: Declarations,
    changes,
    db: Database,
    *,
    full_listing: bool,
) -> ChangePlan:
    """The versions to run for one delta result (`dynamic_assets.drive.graph.DeltaResult`).

    `full_listing`: the items come from an enumeration of everything (the first tick, a resync,
    or the continuation of one), so version folders need no listing of their own.
    """
    declared = decls.by_name()
    plan = ChangePlan()
    seen = discover(ListedItems(changes.items), decls)
    changed_files = [i for i in changes.items if not i.is_folder]
    with db.connect() as conn:
        before = _rows_by_item(conn, [i.item_id for i in changed_files])
        deleted_rows = _mark_deleted(conn, changes.deleted)
        if full_listing and changes.complete and changes.full:
            deleted_rows += _mark_absent(conn, {i.item_id for i in changes.items})
    forced: set[str] = set()
    for _id, path, ds, ver in deleted_rows:
        plan.deleted.append((path, ds, ver))
        if ds and ver:
            forced.add(f"{ds}/{ver}")
    for item in changed_files:  # a file moved out of a version changes that version too
        for row in before.get(item.item_id, []):
            if row["path"] != item.path and row["dataset"] and row["version"]:
                forced.add(f"{row['dataset']}/{row['version']}")

    if full_listing:
        candidates = dict(seen.versions)
        plan.problems.extend(seen.problems)
        for key in forced - candidates.keys():
            ds, ver = key.split("/", 1)
            candidates[key] = VersionFolder(ds, ver, f"{DATASETS_FOLDER}/{ds}/{ver}")
    else:
        plan.problems.extend(
            p for p in seen.problems if p.reason != "the version folder holds no data files"
        )
        candidates = {}
        for key in sorted(set(seen.versions) | forced):
            ds, ver = key.split("/", 1)
            if ds not in declared or not is_version(ver):
                continue
            listing = discover(drive, decls, dataset=ds, version=ver)
            plan.listed_folders += 1
            candidates[key] = listing.versions.get(key) or VersionFolder(
                ds, ver, f"{DATASETS_FOLDER}/{ds}/{ver}"
            )
            plan.problems.extend(
                p for p in listing.problems if p.reason != "the version folder holds no data files"
            )

    for key, vf in sorted(candidates.items()):
        if not vf.files and not vf.rejected:
            if key in forced:
                plan.emptied.append(vf)
            else:
                plan.problems.append(
                    Problem(
                        vf.folder,
                        "the version folder holds no data files",
                        "quarantined",
                        vf.dataset,
                        vf.version,
                    )
                )
    with db.connect() as conn:
        runnable = {k: v for k, v in candidates.items() if v.files or v.rejected}
        ids = [item.item_id for v in runnable.values() for item, _ in v.files]
        ids += [p.item.item_id for v in runnable.values() for p in v.rejected if p.item]
        rows = _rows_by_item(conn, ids)
        for key, vf in sorted(runnable.items()):
            if key not in forced and _all_settled(vf, rows):
                plan.unchanged.append(key)
            else:
                plan.versions[key] = vf
        plan.problems = _new_problems(conn, plan.problems)
    return plan


def _all_settled(vf: VersionFolder, rows: dict[str, list[dict]]) -> bool:
    entries = [item for item, _ in vf.files]
    for p in vf.rejected:
        if p.item is None:
            return False
        entries.append(p.item)
    if not entries:
        return False
    for item in entries:
        match = next(
            (
                r
                for r in rows.get(item.item_id, [])
                if r["path"] == item.path and _same_content(r, item)
            ),
            None,
        )
        if match is None or match["status"] not in SETTLED:
            return False
    return True


_ROW_KEYS = (
    "id",
    "drive_item_id",
    "path",
    "etag",
    "ctag",
    "quick_xor_hash",
    "sha256",
    "status",
    "dataset",
    "version",
)


def _rows_by_item(conn, item_ids: list[str]) -> dict[str, list[dict]]:
    if not item_ids:
        return {}
    out: dict[str, list[dict]] = {}
    for r in conn.execute(
        f"SELECT {', '.join(_ROW_KEYS)} FROM public.onedrive_ingest WHERE drive_item_id = ANY(%s) "
        "AND status NOT IN ('deleted', 'superseded')",
        (list(set(item_ids)),),
    ).fetchall():
        row = dict(zip(_ROW_KEYS, r, strict=True))
        out.setdefault(row["drive_item_id"], []).append(row)
    return out


def _mark_deleted(conn, deleted) -> list[tuple]:
    """Mark the rows of deleted items (and of files below deleted folders) `deleted`."""
    if not deleted:
        return []
    ids = [d.item_id for d in deleted]
    prefixes = [d.path.rstrip("/") + "/" for d in deleted if d.is_folder and d.path]
    return conn.execute(
        """UPDATE public.onedrive_ingest SET status = 'deleted', error = %s, updated_at = now(),
                   deleted_at = now()
            WHERE status NOT IN ('deleted', 'superseded')
              AND (drive_item_id = ANY(%s)
                   OR EXISTS (SELECT 1 FROM unnest(%s::text[]) AS p(prefix)
                               WHERE left(path, length(p.prefix)) = p.prefix))
        RETURNING id, path, dataset, version""",
        (DELETED_REASON, ids, prefixes),
    ).fetchall()


def _mark_absent(conn, present: set[str]) -> list[tuple]:
    """After a complete full enumeration: rows of drive files no longer listed are deleted."""
    rows = conn.execute(
        """SELECT id, drive_item_id FROM public.onedrive_ingest
            WHERE status NOT IN ('deleted', 'superseded') AND path LIKE 'datasets/%%'
              AND drive_item_id NOT LIKE 'path-%%' AND drive_item_id NOT LIKE 'local-%%'"""
    ).fetchall()
    gone = [r[0] for r in rows if r[1] not in present]
    if not gone:
        return []
    return conn.execute(
        """UPDATE public.onedrive_ingest SET status = 'deleted', error = %s, updated_at = now(),
                   deleted_at = now()
            WHERE id = ANY(%s) RETURNING id, path, dataset, version""",
        (DELETED_REASON + " (found missing after a full listing)", gone),
    ).fetchall()


def _new_problems(conn, problems: list[Problem]) -> list[Problem]:
    """Problems not already recorded with the same status and reason for the same content."""
    if not problems:
        return []
    rows = conn.execute(
        "SELECT path, status, error, etag FROM public.onedrive_ingest WHERE path = ANY(%s)",
        (list({p.path for p in problems}),),
    ).fetchall()
    known = {(r[0], r[1], r[2], r[3]) for r in rows}
    return [
        p
        for p in problems
        if (p.path, p.status, p.reason, p.item.etag if p.item else "-") not in known
    ]
