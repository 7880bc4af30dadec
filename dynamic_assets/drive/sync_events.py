"""The drive's sync events in `public.sync_events`: a recorder the Graph client calls where a
request is throttled or a delta link expires, and the drive's quota as read at a moment."""

from __future__ import annotations

import logging

from psycopg.types.json import Jsonb

from dynamic_assets.db import Database
from dynamic_assets.drive.base import Drive
from dynamic_assets.drive.graph.http import SyncEvent, SyncRecorder

log = logging.getLogger(__name__)


def store_event(db: Database, drive: str, event: SyncEvent) -> None:
    """One row of `public.sync_events`."""
    with db.connect() as conn:
        conn.execute(
            """INSERT INTO public.sync_events (at, kind, drive, detail, seconds)
               VALUES (%s, %s, %s, %s, %s)""",
            (event.at, event.kind, drive, Jsonb(event.detail), event.seconds),
        )


def database_recorder(db: Database, drive: str) -> SyncRecorder:
    """A recorder that stores each event of the drive labelled `drive` as it happens."""

    def record(event: SyncEvent) -> None:
        store_event(db, drive, event)

    return record


def recording(drive: Drive, db: Database) -> Drive:
    """`drive`, recording its sync events in `db` from now on when it is a Graph drive that records
    them nowhere yet (the process's shared `GraphDrive` keeps the recorder it was given first)."""
    from dynamic_assets.drive.graph.drive import GraphDrive

    if isinstance(drive, GraphDrive) and drive.recorder is None:
        drive.recorder = database_recorder(db, drive.label)
    return drive


def record_quota(db: Database, drive: Drive) -> dict | None:
    """Read a Graph drive's quota (`GET /drive`) and store it as a `quota` event; None for a drive
    without one (a local folder) or when Graph did not answer (the reading is then missing, the
    caller goes on)."""
    from dynamic_assets.drive.graph.drive import GraphDrive
    from dynamic_assets.drive.graph.http import GraphError

    if not isinstance(drive, GraphDrive):
        return None
    try:
        quota = drive.quota()
    except GraphError as exc:
        log.warning("the drive's quota was not read: %s", exc)
        return None
    store_event(db, drive.label, SyncEvent("quota", quota))
    return quota
