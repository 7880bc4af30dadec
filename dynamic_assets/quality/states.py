"""The state of each dataset version, as `public.version_states` derives it from the records
(migration 0006), and which state is final: `anchored` when TON anchoring is configured, else
`attested`. `status` shows the versions not final; every run, drive sensor tick and reconcile
drives them forward."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

import psycopg

from dynamic_assets.declarations.names import version_sort_key

# In the order a version goes through them.
STATES = (
    "listed",
    "quarantined",
    "staged",
    "unfingerprinted",
    "curated",
    "attested",
    "anchored",
    "deleted",  # by its lifecycle policy: nothing more to do
)


@dataclass(frozen=True)
class VersionState:
    dataset: str
    version: str
    state: str
    since: datetime | None
    detail: str

    def final(self, anchoring: bool) -> bool:
        return is_final(self.state, anchoring)

    def as_dict(self) -> dict:
        return asdict(self)


def final_state(anchoring: bool) -> str:
    return "anchored" if anchoring else "attested"


def is_final(state: str, anchoring: bool) -> bool:
    """Whether a version in `state` is done: anchored (with anchoring), else attested or beyond."""
    return STATES.index(state) >= STATES.index(final_state(anchoring))


def version_states(
    conn: psycopg.Connection, dataset: str | None = None, version: str | None = None
) -> list[VersionState]:
    """The state of every version (of `dataset`, and only `version` when given), in dataset
    and version order."""
    rows = conn.execute(
        """SELECT dataset, version, state, since, detail FROM public.version_states
            WHERE (%(dataset)s::text IS NULL OR dataset = %(dataset)s)
              AND (%(version)s::text IS NULL OR version = %(version)s)""",
        {"dataset": dataset, "version": version},
    ).fetchall()
    found = [VersionState(*r) for r in rows]
    return sorted(found, key=lambda s: (s.dataset, version_sort_key(s.version)))


def not_final(
    conn: psycopg.Connection, anchoring: bool, dataset: str | None = None
) -> list[VersionState]:
    """The versions (of `dataset`) not in their final state."""
    return [s for s in version_states(conn, dataset) if not s.final(anchoring)]
