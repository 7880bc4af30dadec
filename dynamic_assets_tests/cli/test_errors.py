"""What a user sees when a command cannot go on: one line saying what failed, why and what to
do, exit 2 for configuration and usage, the traceback only with --debug."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets.declarations.model import DEMO_CONFIG

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret-Pw-91"
UNREACHABLE = f"postgresql://u:{PASSWORD}@127.0.0.1:1/x"
REFUSED = (
    "Error: cannot connect to Postgres at 127.0.0.1:1 (connection refused): is the server "
    "running? SUPABASE_DB_URL is set, so the embedded server is not used\n"
)


def _env(tmp_path: Path, url: str, config: Path = DEMO_CONFIG) -> dict[str, str]:
    return {
        "DYNAMIC_ASSETS_HOME": str(tmp_path / "home"),
        "DYNAMIC_ASSETS_DRIVE": str(tmp_path / "drive"),
        "DYNAMIC_ASSETS_CONFIG": str(config),
        "SUPABASE_DB_URL": url,
        "DAGSTER_HOME": "",
        "DYNAMIC_ASSETS_DEBUG": "",
    }


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["run", "--no-train"],
        ["verify", "market", "2024-06-01"],
        ["lineage", "market", "2024-06-01"],
    ],
)
def test_an_unreachable_database_is_one_line_and_exit_2(tmp_path, args):
    (tmp_path / "drive").mkdir()
    result = CliRunner().invoke(main, args, env=_env(tmp_path, UNREACHABLE))
    assert result.stdout == ""
    assert result.stderr == REFUSED
    assert result.exit_code == 2
    assert PASSWORD not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["run", "--no-train"],
        ["verify", "market", "2024-06-01"],
        ["lineage", "market", "2024-06-01"],
        ["checkpoints"],
    ],
)
def test_a_malformed_database_url_is_one_line_and_exit_2(tmp_path, args):
    (tmp_path / "drive").mkdir()
    result = CliRunner().invoke(main, args, env=_env(tmp_path, f"postgresql://u:{PASSWORD}@[::1/x"))
    assert result.stderr == (
        "Error: SUPABASE_DB_URL: the database connection string cannot be parsed by libpq (it "
        "is not shown, since it may hold a password): give a postgresql:// URI or key=value "
        "pairs\n"
    )
    assert result.exit_code == 2
    assert PASSWORD not in result.output


def test_a_mistyped_column_type_is_one_line_per_error(tmp_path):
    config = tmp_path / "decls.yaml"
    text = DEMO_CONFIG.read_text(encoding="utf-8")
    config.write_text(text.replace("type: float", "type: flaot"), encoding="utf-8")
    result = CliRunner().invoke(main, ["status"], env=_env(tmp_path, UNREACHABLE, config))
    expected = (
        "'flaot' is not one of string, integer, float, boolean, date, timestamp, json, vector(N)"
    )
    lines = result.stderr.splitlines()
    assert lines[0] == f"Error: {config}: datasets[0].columns[3].type: {expected}"
    assert len(lines) == text.count("type: float")
    assert all(ln.startswith(f"{config}: datasets[") and ln.endswith(expected) for ln in lines[1:])
    assert result.exit_code == 2


def _cli(args: list[str], environ: dict[str, str]) -> subprocess.CompletedProcess:
    full = {**os.environ, **environ}
    full.pop("DAGSTER_HOME", None)
    full["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "dynamic_assets.cli", *args],
        env=full,
        cwd=REPO,
        capture_output=True,
        text=True,
    )


def test_debug_shows_the_traceback(tmp_path):
    quiet = _cli(["status"], _env(tmp_path, UNREACHABLE))
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (2, "", REFUSED)

    for args, extra in [(["--debug", "status"], {}), (["status"], {"DYNAMIC_ASSETS_DEBUG": "1"})]:
        loud = _cli(args, {**_env(tmp_path, UNREACHABLE), **extra})
        assert loud.returncode == 1
        assert "Traceback (most recent call last)" in loud.stderr
        assert "Connection refused" in loud.stderr
        assert PASSWORD not in loud.stderr + loud.stdout
