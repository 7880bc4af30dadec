"""One lifecycle pass: encrypt the plaintext archives of datasets declared sensitive since
(`reseal`), delete the versions their policy makes due (`deletion`), measure core, plan the moves,
move each version in the plan: core -> main (`main_tier.move_to_main`), core -> archive or main
-> archive (`archive.archive_version`). The pass ends with the placement (`placement`) of every
version it moved, sealed or deleted.

A move that fails (an unreachable drive, a copy that does not verify) leaves its version where
it was and is reported; the pass goes on with the others, and the next pass plans it again."""

from __future__ import annotations

from dataclasses import dataclass, field

from dynamic_assets.db import Database
from dynamic_assets.db.connection import DatabaseUnreachable
from dynamic_assets.declarations.model import Declarations
from dynamic_assets.drive.base import Drive
from dynamic_assets.lifecycle.archive import Archived, ArchiveError, Step, archive_version
from dynamic_assets.lifecycle.deletion import DeletionPass, deletion_pass
from dynamic_assets.lifecycle.encryption import key_configured
from dynamic_assets.lifecycle.main_tier import (
    MovedToCore,
    MovedToMain,
    main_database,
    move_to_main,
    restore_from_main,
)
from dynamic_assets.lifecycle.placement import Placement, placement
from dynamic_assets.lifecycle.plan import CORE, MAIN, Move, Plan, plan_pass
from dynamic_assets.lifecycle.reseal import Resealed, seal_plaintext_archives
from dynamic_assets.lifecycle.usage import core_usage, record_snapshot
from dynamic_assets.provenance.signing import SigningKey


@dataclass
class Pass:
    plan: Plan
    moved: list[Archived | MovedToMain | MovedToCore] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    deletions: DeletionPass | None = None
    resealed: list[Resealed] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # versions left in a state to act on
    placements: list[Placement] = field(default_factory=list)  # of the versions changed


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
    # Sealing first: a plaintext file left by a sealing killed before its deletion is removed
    # while the registry still names it, before a deletion by policy forgets the archive.
    sealing = seal_plaintext_archives(db, drive, decls, dry_run=dry_run)
    deletions = deletion_pass(db, drive, decls, key, dry_run=dry_run)
    done = Pass(
        current_plan(db, decls),
        deletions=deletions,
        resealed=sealing.resealed,
        problems=sealing.problems,
    )
    done.failed.extend(deletions.failed)
    done.failed.extend(sealing.failed)
    if dry_run:
        return done
    for move in done.plan.moves:
        try:
            moved = _move(db, drive, decls, move, step)
        except ArchiveError as exc:
            done.failed.append(str(exc))
            continue
        except DatabaseUnreachable as exc:
            done.failed.append(
                f"{move.dataset} {move.version} ({move.source} tier): {exc}; nothing was dropped"
            )
            continue
        if moved is not None:
            done.moved.append(moved)
    changed = [(m.dataset, m.version) for m in done.moved]
    changed += [(r.dataset, r.version) for r in done.resealed]
    changed += [(d.dataset, d.version) for d in deletions.deleted]
    with db.connect() as conn:
        record_snapshot(conn, "lifecycle")  # the size history the weekly review projects
        done.placements = [placement(conn, d, v) for d, v in dict.fromkeys(changed)]
    return done


def _move(
    db: Database, drive: Drive, decls: Declarations, move: Move, step: Step | None
) -> Archived | MovedToMain | MovedToCore | None:
    where = f"{move.dataset} {move.version}"
    if move.target == CORE:
        rows = restore_from_main(db, move.dataset, move.version)
        return MovedToCore(move.dataset, move.version, rows)
    if move.target == MAIN:
        main = main_database(decls.storage.main, where)
        assert main is not None and decls.storage.main is not None  # planned only when declared
        return move_to_main(
            db, main, decls.storage.main.url_env, move.dataset, move.version, step=step
        )
    source = None
    if move.source == MAIN:
        from dynamic_assets.lifecycle.archive import registered
        from dynamic_assets.lifecycle.main_tier import main_of

        with db.connect() as conn:
            source = main_of(registered(conn, move.dataset, move.version))
    return archive_version(
        db,
        drive,
        decls.storage.archive.folder,
        move.dataset,
        move.version,
        step=step,
        source=source,
    )
