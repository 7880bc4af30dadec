"""How much of its budget the core database uses: the database's size and each curated
partition's (`pg_total_relation_size`: table, indexes and TOAST), against `storage.core`."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from dynamic_assets.db.tables import CURATED_SCHEMA, partition_name
from dynamic_assets.declarations.storage import CoreTier

MB = 1024 * 1024


@dataclass(frozen=True)
class VersionUsage:
    """One registered curated version: its tier, when it was curated and, in core, the bytes
    its partition takes."""

    dataset: str
    version: str
    tier: str
    curated_at: object
    bytes: int


@dataclass(frozen=True)
class CoreUsage:
    database_bytes: int
    budget_bytes: int
    warn_at: float
    critical_at: float
    versions: list[VersionUsage]

    @property
    def fraction(self) -> float:
        return self.database_bytes / self.budget_bytes

    @property
    def status(self) -> str:
        return status_of(self.fraction, self.warn_at, self.critical_at)

    @property
    def curated_bytes(self) -> int:
        return sum(v.bytes for v in self.versions if v.tier == "core")

    def in_tier(self, tier: str) -> list[VersionUsage]:
        return [v for v in self.versions if v.tier == tier]


def status_of(fraction: float, warn_at: float, critical_at: float) -> str:
    """healthy below `warn_at`, monitor from it, critical from `critical_at`."""
    if fraction >= critical_at:
        return "critical"
    if fraction >= warn_at:
        return "monitor"
    return "healthy"


def core_usage(conn: psycopg.Connection, core: CoreTier) -> CoreUsage:
    """The database's size and every registered curated version with its tier and, for the
    versions in core, the size of their partition."""
    database = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    rows = conn.execute(
        "SELECT name, version, tier, curated_at FROM public.datasets WHERE status = 'curated' "
        "ORDER BY curated_at, name, version"
    ).fetchall()
    versions = []
    for name, version, tier, curated_at in rows:
        size = 0
        if tier == "core":
            found = conn.execute(
                "SELECT pg_total_relation_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = %s",
                (CURATED_SCHEMA, partition_name(name, version)),
            ).fetchone()
            size = int(found[0]) if found else 0
        versions.append(VersionUsage(name, version, tier, curated_at, size))
    return CoreUsage(
        database_bytes=int(database[0] if database else 0),
        budget_bytes=core.budget_bytes,
        warn_at=core.warn_at,
        critical_at=core.critical_at,
        versions=versions,
    )


def record_snapshot(conn: psycopg.Connection, source: str) -> tuple[int, int]:
    """One row of `public.storage_snapshots`: the database's size and the curated partitions'
    now, measured by `source` (`lifecycle` or `run`); returns (database, curated) bytes."""
    row = conn.execute(
        """INSERT INTO public.storage_snapshots (source, database_bytes, curated_bytes)
           SELECT %(source)s, pg_database_size(current_database()),
                  coalesce((SELECT sum(pg_total_relation_size(t.relid))
                              FROM pg_catalog.pg_class c, pg_partition_tree(c.oid) t
                             WHERE c.relnamespace = %(schema)s::regnamespace
                               AND c.relkind IN ('r', 'p') AND NOT c.relispartition), 0)
           RETURNING database_bytes, curated_bytes""",
        {"source": source, "schema": CURATED_SCHEMA},
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])
