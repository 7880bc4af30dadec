"""Where a curated version lives now, as the registry records it: its tier (`core`, `main`,
`archive`, or `deleted` once no tier holds it), its location without any credential (core's
table, the main database's host, port and name, the archive file's path in the drive) and when
it was placed there (`datasets.updated_at`). The Dagster shell reports it on the version's
partition after each move, restore or deletion."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from dynamic_assets.db.tables import CURATED_SCHEMA

DELETED = "deleted"


@dataclass(frozen=True)
class Placement:
    dataset: str
    version: str
    tier: str
    location: str
    moved_at: datetime


def _location(dataset: str, tier: str, locations: dict[str, Any]) -> str:
    if tier == "core":
        return f"{CURATED_SCHEMA}.{dataset}"
    if tier == "main":
        main = locations.get("main")
        database = main.get("database") if isinstance(main, dict) else main
        return f"main tier: {database or 'database not recorded'}"
    if tier == "archive":
        archive = locations.get("archive") or {}
        return str(archive.get("path") or "archive file not recorded")
    return "no tier"


def placement(conn: psycopg.Connection, dataset: str, version: str) -> Placement:
    """The version's placement; `deleted` (no tier) when it is no longer a curated version."""
    row = conn.execute(
        "SELECT tier, platform_locations, updated_at FROM public.datasets "
        "WHERE name = %s AND version = %s AND status = 'curated'",
        (dataset, version),
    ).fetchone()
    if row is None:
        return Placement(dataset, version, DELETED, "no tier", datetime.now(UTC))
    tier, locations, updated_at = row
    return Placement(
        dataset,
        version,
        tier,
        _location(dataset, tier, dict(locations or {})),
        updated_at or datetime.now(UTC),
    )
