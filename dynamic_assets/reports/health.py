"""The platform's health in the weekly review: the drive's quota as last read before the window's
end (`public.sync_events`, kind `quota`) and the database's size history against the core budget
(`storage_trend`); the drive sensors' ticks and cursors (`sensor_health`) are added where a Dagster
instance is known."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from dynamic_assets.declarations.storage import CoreTier
from dynamic_assets.reports.sensor_health import SensorsHealth
from dynamic_assets.reports.storage_trend import StorageTrend, storage_trend


@dataclass(frozen=True)
class Quota:
    """The drive's quota as Graph reported it at `at`; bytes, and Graph's `state`."""

    at: datetime
    drive: str
    total: int | None
    used: int | None
    remaining: int | None
    state: str | None

    @property
    def fraction(self) -> float | None:
        return self.used / self.total if self.used is not None and self.total else None


@dataclass
class Health:
    quota: Quota | None = None
    storage: StorageTrend | None = None
    sensors: SensorsHealth = field(default_factory=SensorsHealth)


def _int(value) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def quota_figure(conn: psycopg.Connection, until: datetime) -> Quota | None:
    """The latest quota reading before `until`, None when there is none."""
    row = conn.execute(
        """SELECT at, drive, detail FROM public.sync_events
            WHERE kind = 'quota' AND at < %(until)s ORDER BY at DESC, id DESC LIMIT 1""",
        {"until": until},
    ).fetchone()
    if row is None:
        return None
    at, drive, d = row
    state = d.get("state")
    return Quota(
        at,
        drive,
        _int(d.get("total")),
        _int(d.get("used")),
        _int(d.get("remaining")),
        state if isinstance(state, str) else None,
    )


def health_figures(conn: psycopg.Connection, core: CoreTier, until: datetime) -> Health:
    return Health(quota=quota_figure(conn, until), storage=storage_trend(conn, core, until))
