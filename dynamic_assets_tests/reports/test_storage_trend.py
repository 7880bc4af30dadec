"""The database's size history in the weekly review: snapshots written by each lifecycle pass and
each run, growth per week, and the dates the current growth reaches the core budget's warn_at and
critical_at, asserted against a built history."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from dynamic_assets.drive import LocalDrive
from dynamic_assets.lifecycle.run import run_pass
from dynamic_assets.reports import write_review

MIB = 1024 * 1024


def _line(md: str, label: str) -> str:
    m = re.search(rf"^- {re.escape(label)}: (.*)$", md, re.M)
    assert m, f"no line {label!r} in\n{md}"
    return m.group(1)


def _snapshots(db, points: list[tuple[datetime, int]]) -> None:
    with db.connect() as conn:
        for at, mib in points:
            conn.execute(
                """INSERT INTO public.storage_snapshots (at, source, database_bytes, curated_bytes)
                   VALUES (%s, 'run', %s, 0)""",
                (at, mib * MIB),
            )


def test_growth_per_week_and_the_projected_dates_of_warn_at_and_critical_at(db, decls, tmp_path):
    now = datetime.now(UTC).replace(microsecond=0)
    day = timedelta(days=1)
    # 100 MiB six weeks ago (outside the 28 days the growth is taken over), then +10 MiB a week.
    _snapshots(
        db,
        [
            (now - 40 * day, 100),
            (now - 29 * day, 300),
            (now - 22 * day, 310),
            (now - 15 * day, 320),
            (now - 8 * day, 330),
            (now - 1 * day, 340),
            (now + timedelta(hours=1), 999),  # after the window: not counted
        ],
    )
    core = decls.storage.core
    assert (core.budget_mb, core.warn_at, core.critical_at) == (500, 0.8, 0.9)
    review = write_review(db, LocalDrive(tmp_path), decls, now=now)
    md = review.markdown
    assert _line(md, "core budget") == "500.0 MiB"
    assert _line(md, "growth per week (last 28 days of snapshots)") == "10.0 MiB"
    # 400 MiB - 340 MiB at 10 MiB a week: 6 weeks after the latest snapshot; 450 MiB: 11 weeks.
    assert _line(md, "reaches warn_at (80.0%, 400.0 MiB)") == f"{now + 41 * day:%Y-%m-%d}"
    assert _line(md, "reaches critical_at (90.0%, 450.0 MiB)") == f"{now + 76 * day:%Y-%m-%d}"
    weeks = review.figures.health.storage.weeks
    assert [w.database_bytes // MIB for w in weeks] == [100, 300, 310, 320, 330, 340]
    assert [None if w.growth is None else w.growth // MIB for w in weeks] == [
        None,
        200,
        10,
        10,
        10,
        10,
    ]
    html = (tmp_path / review.html_path).read_text()
    assert "reaches warn_at (80.0%, 400.0 MiB)" in html
    assert f"{now + 41 * day:%Y-%m-%d}" in html


def test_a_threshold_already_passed_and_a_shrinking_database(db, decls, tmp_path):
    now = datetime.now(UTC).replace(microsecond=0)
    _snapshots(db, [(now - timedelta(days=15), 425), (now - timedelta(days=1), 415)])
    md = write_review(db, LocalDrive(tmp_path), decls, now=now).markdown
    assert _line(md, "growth per week (last 28 days of snapshots)") == "-5.0 MiB"
    assert _line(md, "reaches warn_at (80.0%, 400.0 MiB)") == "already reached"
    assert _line(md, "reaches critical_at (90.0%, 450.0 MiB)") == "not at the current growth"


def test_no_history_says_so(db, decls, tmp_path):
    md = write_review(db, LocalDrive(tmp_path), decls).markdown
    assert _line(md, "growth per week (last 28 days of snapshots)") == "no size history yet"


def test_each_lifecycle_pass_records_the_database_size(db, decls, tmp_path):
    with db.connect() as conn:
        before = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    run_pass(db, LocalDrive(tmp_path), decls)
    with db.connect() as conn:
        after = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        rows = conn.execute(
            "SELECT source, database_bytes FROM public.storage_snapshots"
        ).fetchall()
    assert len(rows) == 1 and rows[0][0] == "lifecycle"
    assert min(before, after) <= rows[0][1] <= max(before, after)
