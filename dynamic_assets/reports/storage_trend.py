"""The database's size over time in the weekly review, from `public.storage_snapshots` (written by
each lifecycle pass and each `dynamic-assets run`): the snapshots of the last weeks, the size at
the end of each week and its growth, the current growth (from the first snapshot of the trailing
`GROWTH_SPAN` to the latest) and the dates at which that growth reaches the core budget's
`warn_at` and `critical_at`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import psycopg

from dynamic_assets.declarations.storage import CoreTier

HISTORY_WEEKS = 8
GROWTH_SPAN = timedelta(days=28)
WEEK_SECONDS = 7 * 24 * 3600.0


@dataclass(frozen=True)
class Snapshot:
    at: datetime
    database_bytes: int


@dataclass(frozen=True)
class WeekSize:
    """The last size measured in the week starting `week`, and its growth over the week before
    (None for the first week of the history)."""

    week: date
    database_bytes: int
    growth: int | None


@dataclass(frozen=True)
class Threshold:
    """A fraction of the core budget, and when the current growth reaches it: `reached` when the
    latest size is already past it, else `on` (None when the size does not grow)."""

    name: str
    fraction: float
    bytes: int
    reached: bool
    on: datetime | None


@dataclass
class StorageTrend:
    budget_bytes: int
    snapshots: list[Snapshot] = field(default_factory=list)
    weeks: list[WeekSize] = field(default_factory=list)
    growth_per_week: float | None = None  # bytes per week over the trailing GROWTH_SPAN
    thresholds: list[Threshold] = field(default_factory=list)

    @property
    def latest(self) -> Snapshot | None:
        return self.snapshots[-1] if self.snapshots else None


def _weeks(conn: psycopg.Connection, since: datetime, until: datetime) -> list[WeekSize]:
    rows = conn.execute(
        """SELECT DISTINCT ON (date_trunc('week', at AT TIME ZONE 'UTC'))
                  date_trunc('week', at AT TIME ZONE 'UTC')::date, database_bytes
             FROM public.storage_snapshots
            WHERE at >= %(since)s AND at < %(until)s
            ORDER BY date_trunc('week', at AT TIME ZONE 'UTC'), at DESC, id DESC""",
        {"since": since, "until": until},
    ).fetchall()
    out: list[WeekSize] = []
    for week, size in rows:
        previous = out[-1].database_bytes if out else None
        out.append(WeekSize(week, int(size), None if previous is None else int(size) - previous))
    return out


def storage_trend(conn: psycopg.Connection, core: CoreTier, until: datetime) -> StorageTrend:
    """The size history of the `HISTORY_WEEKS` weeks before `until` and its projection."""
    since = until - timedelta(weeks=HISTORY_WEEKS)
    trend = StorageTrend(budget_bytes=core.budget_bytes)
    trend.snapshots = [
        Snapshot(at, int(size))
        for at, size in conn.execute(
            """SELECT at, database_bytes FROM public.storage_snapshots
                WHERE at >= %(since)s AND at < %(until)s ORDER BY at, id""",
            {"since": since, "until": until},
        ).fetchall()
    ]
    trend.weeks = _weeks(conn, since, until)
    latest = trend.latest
    if latest is None:
        return trend
    span = [s for s in trend.snapshots if s.at >= latest.at - GROWTH_SPAN]
    elapsed = (latest.at - span[0].at).total_seconds()
    if elapsed > 0:
        trend.growth_per_week = (latest.database_bytes - span[0].database_bytes) / (
            elapsed / WEEK_SECONDS
        )
    for name, fraction in (("warn_at", core.warn_at), ("critical_at", core.critical_at)):
        limit = int(fraction * core.budget_bytes)
        reached = latest.database_bytes >= limit
        on = None
        rate = trend.growth_per_week
        if not reached and rate is not None and rate > 0:
            weeks = (limit - latest.database_bytes) / rate
            on = latest.at + timedelta(seconds=weeks * WEEK_SECONDS)
        trend.thresholds.append(Threshold(name, fraction, limit, reached, on))
    return trend
