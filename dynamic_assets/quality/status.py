"""Health of every declared dataset, from the registry and run records (for `dynamic-assets status`):
its latest and current versions, checks, runs, quarantined files, and each version not in its final state
(`quality.states`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from dynamic_assets.db import Database
from dynamic_assets.declarations.model import Declarations
from dynamic_assets.declarations.names import version_sort_key
from dynamic_assets.quality.states import final_state, not_final


@dataclass
class DatasetHealth:
    dataset: str
    latest_version: str | None = None
    current_version: str | None = None  # promoted (dataset_pointers), else the latest
    latest_rows: int | None = None
    curated_at: datetime | None = None
    checked_version: str | None = None
    checks: dict = field(default_factory=dict)
    failing_checks: list[str] = field(default_factory=list)
    last_success: dict | None = None
    last_failure: dict | None = None
    quarantined: list[dict] = field(default_factory=list)
    # Folders and files of the dataset not taken (`ignored`): path, error; a folder's files omitted
    passed_over: list[dict] = field(default_factory=list)
    stale: bool | None = None
    freshness_days: int | None = None
    final_state: str = "attested"
    versions: list[dict] = field(default_factory=list)  # not final: version, state, since, detail
    sources_deleted: list[str] = field(default_factory=list)  # curated, every file deleted

    @property
    def blocking_failure(self) -> bool:
        return bool(self.failing_checks or self.sources_deleted)

    @property
    def green(self) -> bool:
        """No blocking check failing and every version in its final state."""
        return not self.blocking_failure and not self.versions

    def as_dict(self) -> dict:
        out = asdict(self)
        out["blocking_failure"] = self.blocking_failure
        out["green"] = self.green
        return out


def _failing(checks: dict) -> list[str]:
    failing = []
    for name, result in (checks or {}).items():
        if not isinstance(result, dict) or result.get("passed", True):
            continue
        severity = result.get("severity", "error" if name == "rows_castable" else "warn")
        if severity == "error":
            failing.append(name)
    return failing


def health(
    db: Database, decls: Declarations, *, now: datetime | None = None, anchoring: bool = False
) -> list[DatasetHealth]:
    """The health of each declared dataset; `anchoring` (TON anchoring configured) makes
    `anchored` the final state of a version instead of `attested`."""
    now = now or datetime.now(UTC)
    out: list[DatasetHealth] = []
    with db.connect() as conn:
        for ds in decls.datasets:
            h = DatasetHealth(ds.name, final_state=final_state(anchoring))
            h.versions = [
                {k: v for k, v in s.as_dict().items() if k != "dataset"}
                for s in not_final(conn, anchoring, ds.name)
            ]
            versions = conn.execute(
                "SELECT version, row_count, curated_at FROM public.datasets WHERE name = %s AND status = 'curated'",
                (ds.name,),
            ).fetchall()
            if versions:
                latest = max(versions, key=lambda r: version_sort_key(r[0]))
                h.latest_version, h.latest_rows, h.curated_at = latest
                pointed = conn.execute(
                    "SELECT version FROM public.dataset_pointers WHERE dataset = %s", (ds.name,)
                ).fetchone()
                curated = {r[0] for r in versions}
                h.current_version = (
                    pointed[0] if pointed and pointed[0] in curated else h.latest_version
                )
            stage = conn.execute(
                """SELECT version, checks, status, finished_at FROM public.etl_runs
                    WHERE dataset = %s AND step = 'stage' ORDER BY id DESC LIMIT 1""",
                (ds.name,),
            ).fetchone()
            if stage:
                h.checked_version, h.checks = stage[0], stage[1] or {}
                later_success = conn.execute(
                    """SELECT 1 FROM public.etl_runs WHERE dataset = %s AND version = %s AND step = 'curate'
                         AND status = 'succeeded' AND finished_at >= %s""",
                    (ds.name, stage[0], stage[3]),
                ).fetchone()
                h.failing_checks = [] if later_success else _failing(h.checks)
            ok = conn.execute(
                """SELECT version, run_id, finished_at FROM public.etl_runs
                    WHERE dataset = %s AND step = 'curate' AND status = 'succeeded' ORDER BY id DESC LIMIT 1""",
                (ds.name,),
            ).fetchone()
            if ok:
                h.last_success = {"version": ok[0], "run_id": ok[1], "finished_at": ok[2]}
            bad = conn.execute(
                """SELECT version, run_id, finished_at, step, error FROM public.etl_runs
                    WHERE dataset = %s AND status = 'failed' ORDER BY id DESC LIMIT 1""",
                (ds.name,),
            ).fetchone()
            if bad:
                h.last_failure = {
                    "version": bad[0],
                    "run_id": bad[1],
                    "finished_at": bad[2],
                    "step": bad[3],
                    "error": bad[4],
                }
            h.quarantined = [
                {"version": v, "path": p, "error": e}
                for v, p, e in conn.execute(
                    """SELECT version, path, error FROM public.onedrive_ingest
                        WHERE dataset = %s AND status = 'quarantined' ORDER BY path""",
                    (ds.name,),
                ).fetchall()
            ]
            h.passed_over = _passed_over(conn, ds.name)
            h.sources_deleted = _sources_deleted(conn, ds.name)
            if ds.freshness:
                h.freshness_days = ds.freshness.max_days_between_versions
                last = max((r[2] for r in versions if r[2]), default=None)
                h.stale = last is None or (now - last).total_seconds() > h.freshness_days * 86400
            out.append(h)
    return out


def _passed_over(conn, dataset: str) -> list[dict]:
    """The recorded folders and files of the dataset that the pipeline passes over (a folder
    whose name is not a version, a file outside a version folder), a passed-over folder's own
    files left out."""
    rows = conn.execute(
        """SELECT path, error FROM public.onedrive_ingest
            WHERE dataset = %s AND status = 'ignored' ORDER BY path""",
        (dataset,),
    ).fetchall()
    paths = {path for path, _ in rows}
    return [
        {"path": path, "error": error}
        for path, error in rows
        if path.rsplit("/", 1)[0] not in paths
    ]


def _sources_deleted(conn, dataset: str) -> list[str]:
    """Curated versions whose every recorded source file was deleted from the drive (their
    curated rows are kept), oldest first."""
    rows = conn.execute(
        """SELECT d.version FROM public.datasets d
            WHERE d.name = %s AND d.status = 'curated'
              AND EXISTS (SELECT 1 FROM public.onedrive_ingest f
                           WHERE f.dataset = d.name AND f.version = d.version
                             AND f.status = 'deleted' AND f.drive_item_id NOT LIKE 'path-%%')
              AND NOT EXISTS (SELECT 1 FROM public.onedrive_ingest f
                               WHERE f.dataset = d.name AND f.version = d.version
                                 AND f.status IN ('pending', 'staged', 'curated', 'quarantined'))""",
        (dataset,),
    ).fetchall()
    return sorted((r[0] for r in rows), key=version_sort_key)
