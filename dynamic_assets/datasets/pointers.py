"""Which curated version of a dataset is *current*: `public.dataset_pointers`, and every move of it
in the append-only history `public.dataset_pointer_moves` (who, when, from, to, why).

`promote` points a dataset at a curated, fingerprinted version; `rollback` points it back at the
version that was current before its latest promotion not yet rolled back. Without a pointer, the current version is the
newest curated one. Readers (`read_curated` without a version), the mirrors' `latest` objects and
models declared with `versions: current` follow `current_version`.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import psycopg

from dynamic_assets.datasets.registry import curated_versions
from dynamic_assets.declarations.names import version_sort_key

ACTOR_VARIABLE = "DYNAMIC_ASSETS_ACTOR"


class PointerError(ValueError):
    """A move that cannot be made; the message says why and what can be done."""


@dataclass(frozen=True)
class Move:
    dataset: str
    action: str  # promote | rollback
    from_version: str | None
    to_version: str
    fingerprint: str
    actor: str
    reason: str | None
    moved_at: datetime | None = None
    ledger_seq: int | None = None


def actor() -> str:
    """Who moves a pointer: DYNAMIC_ASSETS_ACTOR, else the operating system user."""
    named = os.environ.get(ACTOR_VARIABLE, "").strip()
    if named:
        return named
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def pointed_version(conn: psycopg.Connection, dataset: str) -> str | None:
    """The version the pointer names, or None when the dataset was never promoted."""
    row = conn.execute(
        "SELECT version FROM public.dataset_pointers WHERE dataset = %s", (dataset,)
    ).fetchone()
    return row[0] if row else None


def current_version(conn: psycopg.Connection, dataset: str) -> str | None:
    """The current curated version: the pointer's while it names a curated version, else the
    newest curated one; None without any curated version."""
    versions = curated_versions(conn, dataset)
    pointed = pointed_version(conn, dataset)
    if pointed is not None and pointed in versions:
        return pointed
    return max(versions, key=version_sort_key) if versions else None


def history(conn: psycopg.Connection, dataset: str) -> list[Move]:
    """Every move of the dataset's pointer, oldest first."""
    rows = conn.execute(
        """SELECT dataset, action, from_version, to_version, fingerprint, actor, reason, moved_at,
                  ledger_seq
             FROM public.dataset_pointer_moves WHERE dataset = %s ORDER BY id""",
        (dataset,),
    ).fetchall()
    return [Move(*r) for r in rows]


def _fingerprinted(conn: psycopg.Connection, dataset: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT version, fingerprint FROM public.datasets "
        "WHERE name = %s AND status = 'curated' AND fingerprint IS NOT NULL",
        (dataset,),
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def _move(
    conn: psycopg.Connection,
    dataset: str,
    action: str,
    version: str,
    fingerprint: str,
    reason: str | None,
    record: Callable[[psycopg.Connection, Move], int | None] | None,
    from_version: str | None,
) -> Move:
    move = Move(dataset, action, from_version, version, fingerprint, actor(), reason)
    seq = record(conn, move) if record is not None else None
    moved_at = conn.execute(
        """INSERT INTO public.dataset_pointer_moves
               (dataset, action, from_version, to_version, fingerprint, actor, reason, ledger_seq)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING moved_at""",
        (dataset, action, from_version, version, fingerprint, move.actor, reason, seq),
    ).fetchone()[0]  # type: ignore[index]
    conn.execute(
        """INSERT INTO public.dataset_pointers (dataset, version, moved_at, moved_by)
           VALUES (%s, %s, %s, %s)
           ON CONFLICT (dataset) DO UPDATE SET
               version = EXCLUDED.version, moved_at = EXCLUDED.moved_at,
               moved_by = EXCLUDED.moved_by""",
        (dataset, version, moved_at, move.actor),
    )
    return Move(
        dataset, action, from_version, version, fingerprint, move.actor, reason, moved_at, seq
    )


def _lock(conn: psycopg.Connection, dataset: str) -> None:
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
        (f"dynamic_assets.pointer|{dataset}",),
    )


def promote(
    conn: psycopg.Connection,
    dataset: str,
    version: str,
    *,
    reason: str | None = None,
    record: Callable[[psycopg.Connection, Move], int | None] | None = None,
) -> Move:
    """Make `version` the current version of `dataset`, in the caller's transaction; `record` may
    write the move elsewhere in the same transaction (it returns a ledger sequence number)."""
    _lock(conn, dataset)
    fingerprints = _fingerprinted(conn, dataset)
    if version not in fingerprints:
        listed = sorted(fingerprints, key=version_sort_key)
        curated = curated_versions(conn, dataset)
        why = "has no fingerprint yet" if version in curated else "is not a curated version"
        raise PointerError(
            f"{dataset} {version} {why}; it cannot be current. Curated and fingerprinted "
            f"versions: {', '.join(listed) or 'none'}"
        )
    before = current_version(conn, dataset)
    return _move(conn, dataset, "promote", version, fingerprints[version], reason, record, before)


def rollback(
    conn: psycopg.Connection,
    dataset: str,
    *,
    reason: str | None = None,
    record: Callable[[psycopg.Connection, Move], int | None] | None = None,
) -> Move:
    """Point `dataset` back at the version that was current before its latest promotion not yet
    rolled back."""
    _lock(conn, dataset)
    moves = history(conn, dataset)
    if not moves:
        raise PointerError(
            f"{dataset} was never promoted: there is no earlier current version to return to"
        )
    # Each promote remembers the version it replaced; each rollback returns to the newest one
    # remembered and forgets it, so rollbacks in a row walk back through the promotions.
    earlier: list[str | None] = []
    for m in moves:
        if m.action == "promote":
            earlier.append(m.from_version)
        elif earlier:
            earlier.pop()
    target = earlier[-1] if earlier else None
    if target is None:
        raise PointerError(
            f"{dataset}: no version was current before {moves[-1].to_version}; "
            "promote the version that should be current instead"
        )
    fingerprints = _fingerprinted(conn, dataset)
    if target not in fingerprints:
        raise PointerError(
            f"{dataset}: the previous current version {target} is no longer curated and "
            f"fingerprinted; curated versions: "
            f"{', '.join(sorted(fingerprints, key=version_sort_key)) or 'none'}"
        )
    before = current_version(conn, dataset)
    return _move(conn, dataset, "rollback", target, fingerprints[target], reason, record, before)
