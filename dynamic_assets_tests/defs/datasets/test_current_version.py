"""The current version on the curated asset in the Dagster UI: each curated materialization says
which version is current, and `promote` / `rollback` record an observation saying so."""

from __future__ import annotations

import dagster as dg
import yaml
from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets.defs.datasets.assets import curated_key
from dynamic_assets_tests.support.runs import run_version


def _meta(instance, version: str) -> dict:
    event = instance.get_latest_materialization_event(curated_key("market"))
    assert event is not None and event.asset_materialization.partition == version
    return event.asset_materialization.metadata


def test_curated_metadata_and_pointer_moves_show_the_current_version(
    defs, instance, tmp_path, db_url, drive_root, decls
):
    assert run_version(defs, instance, "market", "2024-06-01").success
    assert _meta(instance, "2024-06-01")["current_version"].value == "2024-06-01"
    assert run_version(defs, instance, "market", "2024-07-01").success
    assert _meta(instance, "2024-07-01")["current_version"].value == "2024-07-01"

    config = tmp_path / "declarations.yaml"
    config.write_text(yaml.safe_dump(decls.model_dump(mode="json", exclude_defaults=True)))
    env = {
        "DYNAMIC_ASSETS_HOME": str(tmp_path / "cli-home"),
        "DYNAMIC_ASSETS_DRIVE": str(drive_root),
        "DYNAMIC_ASSETS_CONFIG": str(config),
        "SUPABASE_DB_URL": db_url,
        "DAGSTER_HOME": "",
        "TON_MNEMONIC": "",
        "DYNAMIC_ASSETS_ACTOR": "ana@example.org",
    }
    moved = CliRunner().invoke(main, ["promote", "market", "2024-06-01"], env=env)
    assert moved.exit_code == 0, moved.output
    # The home's instance the command wrote to (DAGSTER_HOME of this process is the test's).
    home = dg.DagsterInstance.local_temp(str(tmp_path / "cli-home" / "dagster"))
    seen = home.fetch_observations(curated_key("market"), limit=1).records
    assert len(seen) == 1 and seen[0].asset_observation is not None
    meta = seen[0].asset_observation.metadata
    assert meta["current_version"].value == "2024-06-01"
    assert meta["previous_version"].value == "2024-07-01"
    assert meta["moved_by"].value == "promote by ana@example.org"
