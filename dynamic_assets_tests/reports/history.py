"""A known history for the weekly review: the demo curated by the pipeline now, plus dated
`etl_runs`, `onedrive_ingest`, `datasets` and `models` rows over four weeks (what a real run
cannot backdate), and the figures that history must give for the week before `now`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from dynamic_assets.db import Database
from dynamic_assets.declarations.model import FILE_EXTENSIONS, Declarations
from dynamic_assets.demo.seed import SEED_VERSIONS
from dynamic_assets.drive import LocalDrive
from dynamic_assets_tests.support.demo_db import curate_all

DRIFT = "column note: string -> integer"
MARKET_REASON = "row 3, column close: 'abc' is not a float"
SECRET_VALUE = "0.98765"  # quoted by a sensitive dataset's message: must never be reported


@dataclass(frozen=True)
class Expected:
    versions: int
    files: int
    bytes_staged: int
    failures: int
    quarantined: int
    rows_rejected: int
    latencies: list[float]


def _run(conn, dataset, version, step, status, at, **kw) -> None:
    conn.execute(
        """INSERT INTO public.etl_runs (run_id, dataset, version, step, files, rows_loaded,
                  rows_rejected, bytes, checks, status, error, started_at, finished_at, duration_s)
           VALUES ('history', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 1)""",
        (
            dataset,
            version,
            step,
            kw.get("files"),
            kw.get("rows"),
            kw.get("rejected"),
            kw.get("bytes"),
            Jsonb(kw.get("checks", {})),
            status,
            kw.get("error"),
            at - timedelta(seconds=1),
            at,
        ),
    )


def _file(conn, dataset, version, name, status, modified, updated, error=None) -> None:
    conn.execute(
        """INSERT INTO public.onedrive_ingest (dataset, version, drive_item_id, path, name,
                  file_format, size_bytes, etag, modified_at, status, error, first_seen_at,
                  updated_at)
           VALUES (%s, %s, %s, %s, %s, 'csv', 10, 'e1', %s, %s, %s, %s, %s)""",
        (
            dataset,
            version,
            f"hist-{dataset}-{version}-{name}",
            f"datasets/{dataset}/{version}/{name}",
            name,
            modified,
            status,
            error,
            modified,
            updated,
        ),
    )


def _curated_version(conn, dataset, version, files: list[float], curated: datetime) -> None:
    """A version curated at `curated` whose files were modified `files` seconds before."""
    conn.execute(
        """INSERT INTO public.datasets (name, version, status, curated_at, row_count)
           VALUES (%s, %s, 'curated', %s, 1)""",
        (dataset, version, curated),
    )
    for i, lag in enumerate(files):
        _file(
            conn,
            dataset,
            version,
            f"f{i}.csv",
            "curated",
            curated - timedelta(seconds=lag),
            curated,
        )
    _run(
        conn,
        dataset,
        version,
        "stage",
        "succeeded",
        curated,
        files=len(files),
        bytes=1000 * len(files),
    )
    _run(conn, dataset, version, "curate", "succeeded", curated, files=len(files))


def build_history(db: Database, drive_root: Path, decls: Declarations) -> tuple[datetime, Expected]:
    """The demo curated by the pipeline, then the history dated back from the moment after
    (`now`); `now` and the figures of the 7 days before it."""
    curate_all(db, LocalDrive(drive_root), decls)
    now = datetime.now(UTC)
    day = timedelta(days=1)
    with db.connect() as conn:
        # In the window: three versions (2 + 3 + 4 files), failures, quarantines, checks.
        _curated_version(conn, "market", "2024-08-01", [60, 120], now - 1 * day)
        _curated_version(conn, "market", "2024-08-02", [30, 600, 3600], now - 1 * day)
        _curated_version(conn, "corpus", "v1.2", [10, 20, 40, 7200], now - 3 * day)
        for _ in range(3):
            _run(
                conn, "market", "2024-08-03", "stage", "failed", now - 2 * day, error=MARKET_REASON
            )
        _run(
            conn,
            "embeddings",
            "v2.4",
            "stage",
            "failed",
            now - 2 * day,
            error=f"row 1: {SECRET_VALUE} out of range",
        )
        _run(
            conn,
            "market",
            "2024-08-03",
            "stage",
            "failed",
            now - 2 * day,
            rejected=5,
            checks={
                "rows_castable": {"passed": True, "problems": []},
                "close_between": {"passed": False, "severity": "error", "message": "5 rows"},
                "volume_between": {"passed": True, "severity": "error", "message": ""},
                "schema_unchanged": {"passed": False, "message": DRIFT},
            },
        )
        _file(
            conn,
            "market",
            "2024-08-03",
            "bad1.csv",
            "quarantined",
            now - 3 * day,
            now - 2 * day,
            MARKET_REASON,
        )
        _file(
            conn,
            "market",
            "2024-08-03",
            "bad2.csv",
            "quarantined",
            now - 3 * day,
            now - 2 * day,
            MARKET_REASON,
        )
        _file(
            conn,
            "embeddings",
            "v2.4",
            "e.parquet",
            "quarantined",
            now - 3 * day,
            now - 2 * day,
            f"row 1: {SECRET_VALUE} out of range",
        )
        # Before the window: weeks of older runs that must not count this week.
        for week in (2, 3, 4):
            _curated_version(conn, "market", f"2024-0{week}-15", [5, 5], now - 7 * week * day)
            _run(conn, "market", "x", "stage", "failed", now - 7 * week * day, error="old failure")
        _model(conn, "market_next_return", now - 1 * day, 0.5)
        _model(conn, "market_next_return", now - 15 * day, 0.7)
        demo = _demo_latencies(conn, now - 7 * day, now)
    data = [p for p in (drive_root / "datasets").rglob("*") if p.suffix in FILE_EXTENSIONS]
    demo_files = len(data)
    demo_bytes = sum(p.stat().st_size for p in data)
    return now, Expected(
        versions=sum(len(v) for v in SEED_VERSIONS.values()) + 3,
        files=demo_files + 9,
        bytes_staged=demo_bytes + 9000,
        failures=5,  # three market stage failures, one of embeddings, one failed checks run
        quarantined=3,
        rows_rejected=5,
        latencies=demo + [60, 120, 30, 600, 3600, 10, 20, 40, 7200],
    )


def _model(conn: psycopg.Connection, name: str, at: datetime, rmse: float) -> None:
    conn.execute(
        """INSERT INTO public.models (name, version, performance_metrics, created_at)
           VALUES (%s, %s, %s, %s)""",
        (name, f"run-{at:%Y%m%d}", Jsonb({"test_rmse": rmse}), at),
    )


def _demo_latencies(conn: psycopg.Connection, since: datetime, until: datetime) -> list[float]:
    """The demo's inputs as recorded: each curated file's modified time and its version's
    curation time (the history's own files are added by the caller)."""
    rows = conn.execute(
        """SELECT f.modified_at, d.curated_at FROM public.onedrive_ingest f
             JOIN public.datasets d ON d.name = f.dataset AND d.version = f.version
            WHERE f.status = 'curated' AND f.drive_item_id NOT LIKE 'hist-%%'""",
    ).fetchall()
    return [(c - m).total_seconds() for m, c in rows if since <= c < until]
