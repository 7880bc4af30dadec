"""`dynamic-assets status` and `run` in a terminal, on the seeded demo with the home's embedded
server: no warning nobody can act on, no Dagster log on the terminal (it goes to a file whose
path the summary prints), and each failure named by file, line and reason."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str, environ: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dynamic_assets.cli", *args],
        env=environ,
        cwd=REPO,
        capture_output=True,
        text=True,
    )


@pytest.fixture
def home():
    """A home the embedded server's own user can reach (pytest's tmp_path is the runner's only)."""
    folder = Path(tempfile.mkdtemp(prefix="dai-quiet-run-"))
    folder.chmod(0o755)
    yield folder / "home"
    shutil.rmtree(folder, ignore_errors=True)


def test_run_and_status_print_no_warning_and_keep_dagster_log_in_a_file(tmp_path, home):
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DAGSTER_HOME", "SUPABASE_DB_URL", "XDG_RUNTIME_DIR", "MLFLOW_TRACKING_URI")
    }
    environ.update(
        DYNAMIC_ASSETS_HOME=str(home),
        DYNAMIC_ASSETS_DRIVE=str(tmp_path / "drive"),
        PYTHONPATH=str(REPO),
        COLUMNS="200",
    )
    # Dagster mirrors a step's output through `tail -F`, killed when the step ends; a slow `tail`
    # lost the step's last lines (its failure). Here `tail` copies nothing at all: the log file
    # must not depend on it.
    stalled = tmp_path / "bin"
    stalled.mkdir()
    (stalled / "tail").write_text("#!/bin/sh\nexec sleep 600\n", encoding="utf-8")
    (stalled / "tail").chmod(0o755)
    environ["PATH"] = f"{stalled}{os.pathsep}{environ['PATH']}"
    seeded = _cli("seed", "--scale", "1", environ=environ)
    assert seeded.returncode == 0, seeded.stderr
    bad = tmp_path / "drive" / "datasets" / "market" / "2024-07-01" / "broken.csv"
    bad.write_text("date,symbol\n2024-07-01,AAPL\n", encoding="utf-8")

    ran = _cli("run", environ=environ)
    status = _cli("status", environ=environ)

    for done in (ran, status):
        assert [ln for ln in done.stderr.splitlines() if "Warning" in ln] == []
        assert "Traceback" not in done.stdout + done.stderr
    assert ran.returncode == 1
    terminal = ran.stdout + ran.stderr
    assert " - dagster - " not in terminal and "Stack Trace" not in terminal
    assert "INFO mlflow" not in terminal
    assert ran.stderr.splitlines() == [
        "1 problem(s):",
        "  market 2024-07-01  datasets/market/2024-07-01/broken.csv: line 1: the header does "
        "not match the declaration: missing declared column(s) exchange, open, high, low, "
        "close, volume, note",
    ]
    shown = re.search(r"^Dagster's log of this run: (.+)$", ran.stdout, re.MULTILINE)
    assert shown, ran.stdout
    log = Path(shown.group(1))
    assert log.parent == home / "logs" and re.fullmatch(r"run-\d{8}T\d{6}Z-\d+\.log", log.name)
    text = log.read_text(encoding="utf-8")
    assert "STEP_FAILURE" in text and "broken.csv" in text
