"""Deletion by policy: a curated version past its dataset's `delete_after_days` (days since it
was curated), or whose rows' `_retain_until` has passed, is deleted from every tier that holds it.

Never a version of a dataset under `legal_hold: true`, nor of a dataset the declarations leave
out (its policy is unknown).

A deletion is recorded before anything is removed, in one transaction: a signed ledger entry
(one leaf: the dataset, version and fingerprint, with `deletion`: the policy, why, when and the
tiers that held it) and the registry row's `status` 'deleted' with `deleted_at`,
`deletion_policy` and `deletion_ledger_seq` (migration 0018). Readers refuse the version from
that moment. Then each tier handler (`TIERS`: a tier is one entry) removes its copy and the
tier's key leaves `platform_locations`, one tier at a time. A process killed at any moment
leaves either a curated version untouched or a deleted one whose remaining locations say which
tiers still hold a copy; the next pass (`finish_deletions`) removes them, without a second
ledger entry.

`_retain_until` is read from the version's core partition (its newest value: every row of a
version carries the same date); for a version no longer in core it is the date its rows were
given, the day it was curated plus the dataset's declared `retention_days`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

import psycopg
from psycopg import sql

from dynamic_assets.db import Database
from dynamic_assets.db.tables import (
    CURATED_SCHEMA,
    dataset_lock,
    ident,
    partition_exists,
    partition_name,
    version_lock,
)
from dynamic_assets.declarations.model import Declarations
from dynamic_assets.drive.base import Drive
from dynamic_assets.provenance import ledger, merkle
from dynamic_assets.provenance.signing import SigningKey

Step = Callable[[str], None]
BY_AGE = "delete_after_days"
BY_RETENTION = "_retain_until"


class DeletionError(RuntimeError):
    """A tier could not remove its copy of a deleted version; the message names the version and
    the tier. The deletion stays recorded and the next pass tries again."""


@dataclass(frozen=True)
class Version:
    """A registry row as the tier handlers see it."""

    dataset: str
    version: str
    locations: dict[str, Any]

    @property
    def where(self) -> str:
        return f"{self.dataset} {self.version}"


class TierHandler(Protocol):
    """One storage tier's part in a deletion: whether it holds a copy of the version, and the
    removal of that copy (idempotent: a copy already gone is no error). `location` is the tier's
    key in `platform_locations`."""

    name: str
    location: str

    def holds(self, db: Database, v: Version) -> bool: ...

    def remove(self, db: Database, drive: Drive, v: Version) -> None: ...


class CoreTier:
    """The version's partition of `ai_curated.<dataset>` in the core database."""

    name = "core"
    location = "postgres"

    def holds(self, db: Database, v: Version) -> bool:
        with db.connect() as conn:
            return partition_exists(conn, CURATED_SCHEMA, partition_name(v.dataset, v.version))

    def remove(self, db: Database, drive: Drive, v: Version) -> None:
        part = partition_name(v.dataset, v.version)
        with db.connect() as conn, conn.transaction():
            dataset_lock(conn, CURATED_SCHEMA, v.dataset)
            if partition_exists(conn, CURATED_SCHEMA, part):
                conn.execute(
                    sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
                        ident(CURATED_SCHEMA, v.dataset), ident(CURATED_SCHEMA, part)
                    )
                )
                conn.execute(sql.SQL("DROP TABLE {}").format(ident(CURATED_SCHEMA, part)))


class ArchiveTier:
    """The version's Parquet file in the drive's archive folder (`platform_locations.archive`)."""

    name = "archive"
    location = "archive"

    def holds(self, db: Database, v: Version) -> bool:
        return bool(v.locations.get(self.location))

    def remove(self, db: Database, drive: Drive, v: Version) -> None:
        path = v.locations[self.location]["path"]
        delete = getattr(drive, "delete", None)
        if delete is None:
            raise DeletionError(
                f"{v.where} (archive tier): the {drive.kind} drive cannot delete {path}"
            )
        try:
            delete(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise DeletionError(
                f"{v.where} (archive tier): cannot delete {path} from the drive: {exc}"
            ) from None


# The tiers a deletion removes a copy from, in this order.
TIERS: list[TierHandler] = [CoreTier(), ArchiveTier()]


@dataclass(frozen=True)
class Due:
    """A version the policy deletes: the policy (`delete_after_days` or `_retain_until`), why,
    and the tiers holding it when planned."""

    dataset: str
    version: str
    fingerprint: str | None
    policy: str
    reason: str
    tiers: list[str]


@dataclass
class Deletions:
    due: list[Due] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # a line per version kept by legal hold
    unfinished: list[tuple[str, str]] = field(default_factory=list)  # recorded, copies left


def _retain_until(
    db: Database, dataset: str, version: str, curated_at: datetime | None, days: int | None
) -> date | None:
    with db.connect() as conn:
        part = partition_name(dataset, version)
        if partition_exists(conn, CURATED_SCHEMA, part):
            row = conn.execute(
                sql.SQL("SELECT max(_retain_until) FROM {}").format(ident(CURATED_SCHEMA, part))
            ).fetchone()
            return row[0] if row else None
    if days is None or curated_at is None:
        return None
    return curated_at.astimezone(UTC).date() + timedelta(days=days)


def plan_deletions(
    db: Database,
    decls: Declarations,
    now: datetime | None = None,
    tiers: Sequence[TierHandler] = TIERS,
) -> Deletions:
    """The versions the next pass deletes and why, the ones a legal hold keeps, and the
    deletions recorded whose copies are not all removed yet."""
    now = now or datetime.now(UTC)
    found = Deletions()
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT name, version, status, fingerprint, curated_at, platform_locations "
            "FROM public.datasets WHERE status IN ('curated', 'deleted') ORDER BY name, version"
        ).fetchall()
    declared = decls.by_name()
    for name, version, status, fingerprint, curated_at, locations in rows:
        v = Version(name, version, dict(locations or {}))
        if status == "deleted":
            if any(t.holds(db, v) for t in tiers):
                found.unfinished.append((name, version))
            continue
        if name not in declared:
            continue
        ds = declared[name]
        policy = ds.lifecycle
        why: tuple[str, str] | None = None
        days = policy.delete_after_days if policy else None
        if days is not None and curated_at is not None and now - curated_at > timedelta(days=days):
            why = (BY_AGE, f"curated {curated_at:%Y-%m-%d}, more than {days} days ago")
        if why is None:
            until = _retain_until(db, name, version, curated_at, ds.retention_days)
            if until is not None and until < now.date():
                why = (BY_RETENTION, f"its rows' retention ended on {until:%Y-%m-%d}")
        if why is None:
            continue
        if policy is not None and policy.legal_hold:
            found.held.append(
                f"{name} {version}: kept under legal hold ({why[0]}: {why[1]}); never deleted"
            )
            continue
        held_by = [t.name for t in tiers if t.holds(db, v)]
        found.due.append(Due(name, version, fingerprint, why[0], why[1], held_by))
    return found


def _leaf(due: Due, at: datetime) -> dict[str, Any]:
    return {
        "dataset": due.dataset,
        "version": due.version,
        "fingerprint": due.fingerprint,
        "deletion": {
            "policy": due.policy,
            "reason": due.reason,
            "tiers": due.tiers,
            "deleted_at": ledger.format_time(at),
        },
    }


def record_deletion(conn: psycopg.Connection, due: Due, key: SigningKey) -> int | None:
    """In the caller's transaction: the signed ledger entry and the registry row's `deleted`
    state; returns the entry's sequence number, or None when the version is no longer curated."""
    at = datetime.now(UTC)
    current = conn.execute(
        "SELECT fingerprint FROM public.datasets WHERE name = %s AND version = %s "
        "AND status = 'curated' FOR UPDATE",
        (due.dataset, due.version),
    ).fetchone()
    if current is None or current[0] != due.fingerprint:
        return None
    leaf = _leaf(due, at)
    entry = ledger.append(conn, merkle.root(ledger.leaf_hashes([leaf])).hex(), [leaf], key, now=at)
    conn.execute(
        "UPDATE public.datasets SET status = 'deleted', deleted_at = %s, deletion_policy = %s, "
        "deletion_ledger_seq = %s, updated_at = now() "
        "WHERE name = %s AND version = %s AND status = 'curated'",
        (at, due.policy, entry.seq, due.dataset, due.version),
    )
    return entry.seq


def finish_deletion(
    db: Database,
    drive: Drive,
    dataset: str,
    version: str,
    tiers: Sequence[TierHandler] = TIERS,
    step: Step | None = None,
) -> list[str]:
    """Remove every copy of a deleted version, tier by tier, each removal followed by the tier's
    key leaving `platform_locations`; returns the tiers a copy was removed from."""
    step = step or (lambda _name: None)
    removed: list[str] = []
    for tier in tiers:
        with db.connect() as conn:
            row = conn.execute(
                "SELECT platform_locations FROM public.datasets "
                "WHERE name = %s AND version = %s AND status = 'deleted'",
                (dataset, version),
            ).fetchone()
        if row is None:
            return removed
        v = Version(dataset, version, dict(row[0] or {}))
        if not tier.holds(db, v):
            continue
        tier.remove(db, drive, v)
        step(f"removed:{tier.name}")
        with db.connect() as conn:
            conn.execute(
                "UPDATE public.datasets SET platform_locations = platform_locations - %s, "
                "updated_at = now() WHERE name = %s AND version = %s AND status = 'deleted'",
                (tier.location, dataset, version),
            )
        removed.append(tier.name)
    return removed


@dataclass(frozen=True)
class Deleted:
    dataset: str
    version: str
    policy: str
    reason: str
    tiers: list[str]
    ledger_seq: int | None  # None when a pass finished a deletion recorded before


def delete_due(
    db: Database,
    drive: Drive,
    due: Due,
    key: SigningKey,
    tiers: Sequence[TierHandler] = TIERS,
    step: Step | None = None,
) -> Deleted | None:
    """Record the deletion of one version, then remove its copies (see the module). None when
    the version changed since it was planned (no longer curated, or curated again)."""
    step = step or (lambda _name: None)
    with (
        db.connect(autocommit=True) as lock_conn,
        version_lock(lock_conn, due.dataset, due.version),
    ):
        with db.connect() as conn, conn.transaction():
            seq = record_deletion(conn, due, key)
        if seq is None:
            return None
        step("recorded")
        removed = finish_deletion(db, drive, due.dataset, due.version, tiers, step)
    return Deleted(due.dataset, due.version, due.policy, due.reason, removed, seq)


def resume_deletion(
    db: Database,
    drive: Drive,
    dataset: str,
    version: str,
    tiers: Sequence[TierHandler] = TIERS,
) -> Deleted:
    with db.connect(autocommit=True) as lock_conn, version_lock(lock_conn, dataset, version):
        with db.connect() as conn:
            row = conn.execute(
                "SELECT deletion_policy FROM public.datasets WHERE name = %s AND version = %s",
                (dataset, version),
            ).fetchone()
        removed = finish_deletion(db, drive, dataset, version, tiers)
    policy = row[0] if row else "?"
    return Deleted(dataset, version, policy, "finishing a deletion recorded before", removed, None)


def held_by_no_tier(db: Database, tiers: Sequence[TierHandler] = TIERS) -> list[tuple[str, str]]:
    """Deleted versions no tier holds a copy of any more: their Dagster partitions may go."""
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT name, version, platform_locations FROM public.datasets "
            "WHERE status = 'deleted' ORDER BY name, version"
        ).fetchall()
    return [
        (name, version)
        for name, version, locations in rows
        if not any(t.holds(db, Version(name, version, dict(locations or {}))) for t in tiers)
    ]


@dataclass
class DeletionPass:
    planned: Deletions
    deleted: list[Deleted] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def deletion_pass(
    db: Database,
    drive: Drive,
    decls: Declarations,
    key: SigningKey | None,
    *,
    dry_run: bool = False,
    tiers: Sequence[TierHandler] = TIERS,
    step: Step | None = None,
) -> DeletionPass:
    """Finish the deletions recorded before, then delete the versions the policies make due; a
    version that fails is reported and the pass goes on with the others."""
    done = DeletionPass(plan_deletions(db, decls, tiers=tiers))
    if dry_run:
        return done
    for dataset, version in done.planned.unfinished:
        try:
            done.deleted.append(resume_deletion(db, drive, dataset, version, tiers))
        except DeletionError as exc:
            done.failed.append(str(exc))
    for due in done.planned.due:
        if key is None:
            done.failed.append(
                f"{due.dataset} {due.version}: not deleted: no signing key to record the deletion"
            )
            continue
        try:
            deleted = delete_due(db, drive, due, key, tiers, step)
        except DeletionError as exc:
            done.failed.append(str(exc))
            continue
        if deleted is not None:
            done.deleted.append(deleted)
    return done
