"""The drive sensors' health in the weekly review, read from the Dagster instance the daemon
ticks them on: each sensor's last successful tick, its ticks failed in the window, and when a tick
last stored its cursor, stale after `stale_after` of its intervals.

Only the moment a cursor was stored is read, never its text (the drive sensor's cursor holds a
Graph delta link). Without an instance the review says what it could not see."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# A cursor not stored by any tick for this many of the sensor's intervals is stale.
STALE_AFTER_INTERVALS = 10
# The evaluated ticks searched, newest first, for the last one that stored a cursor.
CURSOR_LOOKBACK = 100


@dataclass(frozen=True)
class Watched:
    """A sensor that lists the drive, and its minimum interval in seconds."""

    name: str
    interval_s: int


@dataclass(frozen=True)
class SensorHealth:
    """One sensor as its ticks in the instance show it (None: no such tick)."""

    name: str
    interval_s: int
    ticked: bool
    last_success: datetime | None = None
    failed: int = 0
    cursor_stored: datetime | None = None
    stale: bool = False


@dataclass
class SensorsHealth:
    """The watched sensors, or why they could not be seen (`unseen`)."""

    stale_after: int = STALE_AFTER_INTERVALS
    sensors: list[SensorHealth] = field(default_factory=list)
    unseen: str | None = "no Dagster instance was given"


def _at(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def sensors_health(
    instance: Any,
    watched: Sequence[Watched],
    since: datetime,
    until: datetime,
    *,
    stale_after: int = STALE_AFTER_INTERVALS,
) -> SensorsHealth:
    """The health of each watched sensor from `instance`'s ticks before `until`; a sensor without
    any tick in the instance is reported as such."""
    from dagster._core.scheduler.instigation import InstigatorType, TickStatus

    states = {
        s.instigator_name: s
        for s in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
    }
    evaluated = [TickStatus.SUCCESS, TickStatus.SKIPPED]
    start, end = since.timestamp(), until.timestamp()
    out = SensorsHealth(stale_after=stale_after, unseen=None)
    for w in watched:
        state = states.get(w.name)
        ids = (state.instigator_origin_id, state.selector_id) if state is not None else None
        if ids is None or not instance.get_ticks(*ids, before=end, limit=1):
            out.sensors.append(SensorHealth(w.name, w.interval_s, ticked=False))
            continue
        ok = instance.get_ticks(*ids, before=end, statuses=evaluated, limit=CURSOR_LOOKBACK)
        failed = instance.get_ticks(*ids, after=start, before=end, statuses=[TickStatus.FAILURE])
        last_stored = next((t.timestamp for t in ok if t.cursor is not None), None)
        out.sensors.append(
            SensorHealth(
                w.name,
                w.interval_s,
                ticked=True,
                last_success=_at(ok[0].timestamp if ok else None),
                failed=len(failed),
                cursor_stored=_at(last_stored),
                stale=last_stored is None or end - last_stored > stale_after * w.interval_s,
            )
        )
    return out


def _when(at: datetime | None) -> str:
    return "none" if at is None else f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def sensor_rows(h: SensorsHealth) -> list[tuple[str, str]]:
    """The Sync section's sensor and cursor lines, as (label, text)."""
    if h.unseen is not None:
        return [("sensors and cursors", f"not seen ({h.unseen})")]
    rows: list[tuple[str, str]] = []
    for s in h.sensors:
        if not s.ticked:
            rows.append((s.name, "no tick recorded in the Dagster instance"))
            continue
        limit = f"{h.stale_after} × {s.interval_s} s"
        cursor = (
            f"STALE, not stored for more than {limit}"
            if s.stale
            else f"fresh (stale after {limit})"
        )
        rows += [
            (f"{s.name} last successful tick", _when(s.last_success)),
            (f"{s.name} ticks failed", str(s.failed)),
            (f"{s.name} cursor", f"{cursor}, last stored {_when(s.cursor_stored)}"),
        ]
    return rows
