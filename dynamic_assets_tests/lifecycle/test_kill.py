"""A process archiving a version killed (SIGKILL) after each step: the version stays readable
in at least one tier, and the next pass finishes the move."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dynamic_assets.declarations.storage import Lifecycle
from dynamic_assets.lifecycle.run import run_pass
from dynamic_assets.read.curated import read_curated

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from dynamic_assets.db import Database
    from dynamic_assets.drive import LocalDrive
    from dynamic_assets.lifecycle.archive import archive_version

    url, root, at = sys.argv[1:]

    def step(name):
        if name == at:
            os.kill(os.getpid(), signal.SIGKILL)

    archive_version(Database(url), LocalDrive(root), "archive", "market", "2024-06-01", step=step)
    """
)


def _rows(db, drive):
    table = read_curated("market", version="2024-06-01", as_arrow=True, database=db, drive=drive)
    return table.sort_by([("date", "ascending"), ("symbol", "ascending")])


def _tier(db):
    with db.connect() as conn:
        return conn.execute(
            "SELECT tier FROM public.datasets WHERE name = 'market' AND version = '2024-06-01'"
        ).fetchone()[0]


@pytest.mark.parametrize("at", ["exported", "uploaded", "verified", "dropped"])
def test_killed_archive_leaves_the_version_readable_and_the_next_pass_finishes(
    curated, db_url, drive, drive_root, tier_decls, at
):
    before = _rows(curated, drive)
    child = subprocess.run(
        [sys.executable, "-c", CHILD, db_url, str(drive_root), at],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert _tier(curated) == ("archive" if at == "dropped" else "core")
    assert _rows(curated, drive).equals(before)

    tier_decls.dataset("market").lifecycle = Lifecycle(hot_versions=1, archive_after_days=1)
    with curated.connect() as conn:
        conn.execute(
            "UPDATE public.datasets SET curated_at = now() - interval '2 days' "
            "WHERE name = 'market' AND version = '2024-06-01'"
        )
    done = run_pass(curated, drive, tier_decls)
    assert done.failed == []
    assert [(a.dataset, a.version) for a in done.moved] == (
        [] if at == "dropped" else [("market", "2024-06-01")]
    )
    assert _tier(curated) == "archive"
    assert _rows(curated, drive).equals(before)
