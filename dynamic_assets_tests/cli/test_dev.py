"""The Dagster UI as a data engineer starts it: `dynamic-assets dev` serves the code location on
the home's Dagster instance, the one `dynamic-assets run` writes to, so the UI shows the runs
made headless; and plain `dagster dev` from the repository root starts with no variable set."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets.declarations.model import DEMO_CONFIG
from dynamic_assets_tests.support.webserver import REPO, child_env, free_port, webserver

pytestmark = pytest.mark.filterwarnings("ignore")


def user_env(tmp_path: Path, db_url: str) -> dict[str, str]:
    return {
        "DYNAMIC_ASSETS_HOME": str(tmp_path / "home"),
        "DYNAMIC_ASSETS_DRIVE": str(tmp_path / "drive"),
        "DYNAMIC_ASSETS_CONFIG": str(DEMO_CONFIG),
        "SUPABASE_DB_URL": db_url,
    }


def test_dev_shows_the_runs_of_a_headless_run_in_one_history(tmp_path, db_url):
    env = user_env(tmp_path, db_url)
    runner = CliRunner()
    assert runner.invoke(main, ["seed"], env={**env, "DAGSTER_HOME": ""}).exit_code == 0
    headless = runner.invoke(
        main,
        ["run", "--dataset", "market", "--version", "2024-06-01", "--no-train"],
        env={**env, "DAGSTER_HOME": ""},
    )
    assert headless.exit_code == 0, headless.output

    port = free_port()
    command = [sys.executable, "-m", "dynamic_assets.cli", "dev", "--port", str(port)]
    with webserver(command, port, child_env(**env), tmp_path, tmp_path / "dev.log") as ui:
        keys = ui.asset_keys()
        assert {"onedrive/market", "ai_raw/market", "ai_curated/market"} <= keys
        runs = ui.runs()
    headless_runs = [
        r
        for r in runs
        if {"key": "trigger", "value": "cli"} in r["tags"]
        and {"key": "version", "value": "2024-06-01"} in r["tags"]
    ]
    # Its staging run, then its curating run (`defs.headless.ingest_version`), newest first.
    assert [(r["jobName"], r["status"]) for r in headless_runs] == [
        ("curate_market", "SUCCESS"),
        ("ingest_market", "SUCCESS"),
    ]
    config = (tmp_path / "home" / "dagster" / "dagster.yaml").read_text()
    assert "QueuedRunCoordinator" in config


def test_plain_dagster_dev_starts_from_the_repository_root(tmp_path, db_url):
    port = free_port()
    command = [sys.executable, "-m", "dagster", "dev", "--port", str(port)]
    env = child_env(**user_env(tmp_path, db_url))
    env.pop("DAGSTER_PG_URL", None)
    with webserver(command, port, env, REPO, tmp_path / "dagster-dev.log") as ui:
        assert "ai_curated/market" in ui.asset_keys()


def test_the_home_instance_queues_runs_up_to_the_setting(tmp_path, monkeypatch):
    from dynamic_assets.defs.headless import dagster_instance
    from dynamic_assets.settings import Settings

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    home = {"DYNAMIC_ASSETS_HOME": str(tmp_path / "home")}

    def queue(env: dict[str, str]):
        instance = dagster_instance(Settings.from_env(env))
        try:
            assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
            return instance.get_concurrency_config().run_queue_config
        finally:
            instance.dispose()

    assert queue(home).max_concurrent_runs == os.cpu_count()
    configured = queue({**home, "DYNAMIC_ASSETS_MAX_CONCURRENT_RUNS": "3"})
    assert configured.max_concurrent_runs == 3
    assert [(t["key"], t["limit"]) for t in configured.tag_concurrency_limits] == [
        ("dynamic_assets/version", 1)
    ]
    with pytest.raises(ValueError, match="DYNAMIC_ASSETS_MAX_CONCURRENT_RUNS is '0'"):
        Settings.from_env({**home, "DYNAMIC_ASSETS_MAX_CONCURRENT_RUNS": "0"})
