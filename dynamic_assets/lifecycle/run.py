"""One lifecycle pass: delete the versions their policy makes due (`deletion`), measure core,
plan the moves, archive each version in the plan.

A move that fails (an unreachable drive, a copy that does not verify) leaves its version where
it was and is reported; the pass goes on with the others, and the next pass plans it again."""

from __future__ import annotations

from dataclasses import dataclass, field

from dynamic_assets.db import Database
from dynamic_assets.declarations.model import Declarations
from dynamic_assets.drive.base import Drive
from dynamic_assets.lifecycle.archive import Archived, ArchiveError, Step, archive_version
from dynamic_assets.lifecycle.deletion import DeletionPass, deletion_pass
from dynamic_assets.lifecycle.encryption import key_configured
from dynamic_assets.lifecycle.plan import Plan, plan_pass
from dynamic_assets.lifecycle.usage import core_usage
from dynamic_assets.provenance.signing import SigningKey


@dataclass
class Pass:
    plan: Plan
    moved: list[Archived] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    deletions: DeletionPass | None = None


def declared(decls: Declarations) -> bool:
    """Whether the declarations hold a storage plan: a `storage` section or a dataset's
    `lifecycle` policy (without either, nothing ever moves on its own)."""
    return "storage" in decls.model_fields_set or any(d.lifecycle for d in decls.datasets)


def current_plan(db: Database, decls: Declarations) -> Plan:
    with db.connect() as conn:
        usage = core_usage(conn, decls.storage.core)
    return plan_pass(decls, usage, encrypts=key_configured())


def run_pass(
    db: Database,
    drive: Drive,
    decls: Declarations,
    *,
    dry_run: bool = False,
    step: Step | None = None,
    key: SigningKey | None = None,
) -> Pass:
    """One pass; `key` signs the ledger entries of deletions (without it, none is made)."""
    deletions = deletion_pass(db, drive, decls, key, dry_run=dry_run)
    done = Pass(current_plan(db, decls), deletions=deletions)
    done.failed.extend(deletions.failed)
    if dry_run:
        return done
    for move in done.plan.moves:
        try:
            archived = archive_version(
                db, drive, decls.storage.archive.folder, move.dataset, move.version, step=step
            )
        except ArchiveError as exc:
            done.failed.append(str(exc))
            continue
        if archived is not None:
            done.moved.append(archived)
    return done
