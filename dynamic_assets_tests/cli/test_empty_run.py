"""A `run` with nothing to do answers from the database and the drive alone: it never loads the
Dagster shell (nor Great Expectations or MLflow), which is what makes such a run quick."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets.declarations.model import DEMO_CONFIG
from dynamic_assets.demo.seed import seed_drive

HEAVY = ("dagster", "great_expectations", "mlflow")

# `dynamic-assets` in this process, then the heavy packages it loaded, as JSON on the last line.
WRAPPER = f"""
import json, sys
from dynamic_assets.cli import main
try:
    main(sys.argv[1:], prog_name="dynamic-assets")
except SystemExit as exit:
    code = exit.code or 0
else:
    code = 0
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {set(HEAVY)!r})
print(json.dumps({{"exit": code, "heavy": sorted({{m.split(".")[0] for m in heavy}})}}))
"""


def env(tmp_path: Path, db_url: str) -> dict[str, str]:
    return {
        "DYNAMIC_ASSETS_HOME": str(tmp_path / "home"),
        "DYNAMIC_ASSETS_DRIVE": str(tmp_path / "drive"),
        "DYNAMIC_ASSETS_CONFIG": str(DEMO_CONFIG),
        "SUPABASE_DB_URL": db_url,
        "DAGSTER_HOME": "",
    }


def run_cli(tmp_path: Path, db_url: str, *args: str) -> tuple[str, dict]:
    """The command's output and {exit, heavy}: the heavy packages its process imported."""
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *args],
        env={**os.environ, **env(tmp_path, db_url), "PYTHONPATH": os.getcwd()},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    *lines, last = done.stdout.strip().splitlines()
    return "\n".join(lines) + done.stderr, json.loads(last)


def test_a_run_after_everything_is_curated_says_nothing_new_without_loading_dagster(
    tmp_path, db_url
):
    seed_drive(tmp_path / "drive")
    for folder in (tmp_path / "drive" / "datasets").glob("*/*"):
        if folder.name != "2024-06-01":  # one market version is enough
            shutil.rmtree(folder)
    first = CliRunner().invoke(main, ["run", "--no-train"], env=env(tmp_path, db_url))
    assert first.exit_code == 0, first.output
    assert "curated" in first.output and "2024-06-01" in first.output

    output, seen = run_cli(tmp_path, db_url, "run", "--no-train")
    assert seen["exit"] == 0, output
    assert "Nothing new: every version in the drive has reached curated." in output
    assert seen["heavy"] == [], output


def test_a_run_of_an_empty_drive_with_training_loads_no_dagster(tmp_path, db_url):
    (tmp_path / "drive" / "datasets").mkdir(parents=True)
    output, seen = run_cli(tmp_path, db_url, "run")
    assert seen["exit"] == 0, output
    assert "Nothing new" in output
    assert seen["heavy"] == [], output
