"""Alert events: their types, how each is built from what happened (quarantined files, proofs,
stale datasets) and how its details leave the platform.

Events (`Event.type`):

| type | when |
|---|---|
| `check.failed` | a blocking asset check failed (the version did not reach curated) |
| `run.failed` | a run failed |
| `file.quarantined` | a file in the drive was quarantined (it cannot be read, or its rows broke a check) |
| `dataset.stale` | no new curated version within the dataset's freshness policy |
| `attestation.confirmed` | a version's fingerprint is in a signed ledger entry (`stage: ledger`), and again once the entry is anchored on TON (`stage: ton`) |
| `weekly_review` | the weekly review was written into the drive (its headline figures and path) |
| `storage.warn` | the core database crossed its `storage.core.warn_at` share of the budget |
| `storage.critical` | the core database crossed its `storage.core.critical_at` share of the budget |

An event's id is derived from its type and key, so the same happening never makes two events;
receivers should deduplicate on it (a retry after a lost response sends the same event again).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

EVENT_TYPES = (
    "check.failed",
    "run.failed",
    "file.quarantined",
    "dataset.stale",
    "attestation.confirmed",
    "weekly_review",
    "storage.warn",
    "storage.critical",
)
STORAGE_LEVELS = {"monitor": "storage.warn", "critical": "storage.critical"}
WITHHELD = "withheld: the dataset is declared sensitive"
MAX_DETAIL = 1000


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Event:
    """One alert. `key` identifies what happened (a run id, a file record, ...): the event id is
    derived from type and key, so the same happening never makes two events."""

    type: str
    key: str
    summary: str
    dataset: str | None = None
    version: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    occurred_at: datetime = field(default_factory=_now)

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {self.type!r}: one of {', '.join(EVENT_TYPES)}")

    @property
    def id(self) -> str:
        return "evt_" + hashlib.sha256(f"{self.type}\x00{self.key}".encode()).hexdigest()[:32]

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "occurred_at": self.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "source": "dynamic_assets",
            "dataset": self.dataset,
            "version": self.version,
            "summary": self.summary,
            "data": dict(self.data),
        }


def detail(text: str | None, sensitive: bool) -> str | None:
    """An error or check message as it may leave the platform: values of a sensitive dataset
    (messages quote the first bad value) are withheld; long messages are cut."""
    if text is None:
        return None
    if sensitive:
        return WITHHELD
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def attestation_confirmed_event(
    dataset: str,
    version: str,
    fingerprint: str,
    *,
    ledger_seq: int,
    entry_hash: str | None = None,
    merkle_root: str | None = None,
    anchor: Mapping[str, Any] | None = None,
    proof_path: str | None = None,
) -> Event:
    """The `attestation.confirmed` event of one version: `stage` is `ledger` once its fingerprint
    is in a signed ledger entry, `ton` once that entry's root is confirmed on TON.

    The hook point for provenance: the alert sensor builds these from `dataset_proofs` (new
    proofs, and proofs whose anchor was recorded); code that attests can send one directly with
    `dispatch`.
    """
    stage = "ton" if anchor else "ledger"
    data: dict[str, Any] = {
        "stage": stage,
        "fingerprint": fingerprint,
        "ledger_seq": ledger_seq,
        "entry_hash": entry_hash,
        "merkle_root": merkle_root,
        "proof_path": proof_path,
    }
    if anchor:
        data["anchor"] = {
            k: anchor.get(k)
            for k in ("network", "wallet", "tx_hash", "tx_lt", "utime")
            if k in anchor
        }
    where = (
        f"anchored on TON ({anchor.get('network', '?')} tx {anchor.get('tx_hash', '?')})"
        if anchor
        else f"in signed ledger entry {ledger_seq}"
    )
    return Event(
        "attestation.confirmed",
        key=f"{dataset}\x00{version}\x00{fingerprint}\x00{stage}",
        summary=f"{dataset} {version}: fingerprint {fingerprint[:16]}… attested {where}",
        dataset=dataset,
        version=version,
        data=data,
    )


def quarantined_events(
    conn: psycopg.Connection,
    since: datetime,
    sensitive: Iterable[str] = (),
    *,
    limit: int = 500,
) -> tuple[list[Event], datetime]:
    """`file.quarantined` for each `onedrive_ingest` row quarantined (or re-quarantined) after
    `since`; returns the events and the newest time seen (the next `since`)."""
    hidden = set(sensitive)
    rows = conn.execute(
        """SELECT id, dataset, version, path, error, etag, updated_at FROM public.onedrive_ingest
            WHERE status = 'quarantined' AND updated_at > %s ORDER BY updated_at, id LIMIT %s""",
        (since, limit),
    ).fetchall()
    events = [
        Event(
            "file.quarantined",
            key=f"{rid}\x00{etag}",
            summary=f"{path} was quarantined"
            + (f" ({dataset} {version})" if dataset and version else ""),
            dataset=dataset,
            version=version,
            data={
                "ingest_id": rid,
                "path": path,
                "reason": detail(error, dataset in hidden),
            },
            occurred_at=at,
        )
        for rid, dataset, version, path, error, etag, at in rows
    ]
    newest = max((r[6] for r in rows), default=since)
    return events, newest


def attestation_events(
    conn: psycopg.Connection, since: datetime, *, limit: int = 500
) -> tuple[list[Event], datetime]:
    """`attestation.confirmed` for each proof written or anchored after `since` (nothing when the
    provenance tables do not exist); returns the events and the newest time seen."""
    found = conn.execute("SELECT to_regclass('public.dataset_proofs')").fetchone()
    if found is None or found[0] is None:
        return [], since
    rows = conn.execute(
        """SELECT dataset, version, fingerprint, ledger_seq, proof -> 'ledger_entry' ->> 'entry_hash',
                  proof -> 'ledger_entry' ->> 'merkle_root', proof -> 'anchor', drive_path, updated_at
             FROM public.dataset_proofs WHERE updated_at > %s ORDER BY updated_at, id LIMIT %s""",
        (since, limit),
    ).fetchall()
    events = []
    for ds, ver, fp, seq, entry_hash, root, anchor, path, _at in rows:
        # One event for the ledger entry, and one more once the entry is anchored on TON.
        for stage_anchor in (None, anchor) if anchor else (None,):
            events.append(
                attestation_confirmed_event(
                    ds,
                    ver,
                    fp,
                    ledger_seq=seq,
                    entry_hash=entry_hash,
                    merkle_root=root,
                    anchor=stage_anchor,
                    proof_path=path,
                )
            )
    newest = max((r[8] for r in rows), default=since)
    return events, newest


def stale_events(health: Iterable[Any]) -> list[Event]:
    """`dataset.stale` for each dataset whose `quality.status.health` says stale: one event per
    staleness episode (keyed by the latest curated version, so a new version starts a new one)."""
    out = []
    for h in health:
        if not h.stale:
            continue
        last = h.curated_at.isoformat() if h.curated_at else None
        out.append(
            Event(
                "dataset.stale",
                key=f"{h.dataset}\x00{h.latest_version or '-'}\x00{h.freshness_days}",
                summary=(
                    f"{h.dataset}: no new curated version for more than {h.freshness_days} day(s)"
                    + (
                        f" (latest: {h.latest_version}, curated {last})"
                        if h.latest_version
                        else " (none yet)"
                    )
                ),
                dataset=h.dataset,
                version=h.latest_version,
                data={
                    "latest_version": h.latest_version,
                    "curated_at": last,
                    "max_days_between_versions": h.freshness_days,
                },
            )
        )
    return out


def storage_event(
    status: str,
    *,
    key: str,
    database_bytes: int,
    budget_bytes: int,
    versions: Mapping[str, int],
    moved: Iterable[str] = (),
) -> Event | None:
    """`storage.warn` (status `monitor`) or `storage.critical` when core crossed that threshold;
    None for `healthy`. `key` names the crossing (the same crossing never makes two events)."""
    kind = STORAGE_LEVELS.get(status)
    if kind is None:
        return None
    mb = 1024 * 1024
    percent = round(100 * database_bytes / budget_bytes, 1)
    return Event(
        kind,
        key=f"{status}\x00{key}",
        summary=f"core database {status}: {database_bytes / mb:.1f} MB, {percent}% of its "
        f"{budget_bytes / mb:g} MB budget",
        data={
            "status": status,
            "usage_mb": round(database_bytes / mb, 1),
            "budget_mb": budget_bytes / mb,
            "percent_of_budget": percent,
            "versions": dict(versions),
            "moved": list(moved),
        },
    )


def since_default(lookback: timedelta = timedelta(days=1)) -> datetime:
    """Where event scans start without a cursor: a day back, so that switching webhooks on does
    not replay the whole history."""
    return _now() - lookback
