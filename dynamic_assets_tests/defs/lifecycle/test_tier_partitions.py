"""Each version's tier on its own `ai_curated/<dataset>` partition in the Dagster UI: the curated
materialization says `tier: core`, and every move, restore or deletion of the lifecycle (the
asset, or `dynamic-assets lifecycle` and `restore` headless) reports an observation of the
partition with its tier, location and time, as the UI's partition page reads them."""

from __future__ import annotations

import dagster as dg
from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets.declarations.storage import Lifecycle, MainTier
from dynamic_assets.defs.datasets.assets import curated_key
from dynamic_assets.defs.headless import dagster_instance
from dynamic_assets.settings import Settings
from dynamic_assets_tests.cli.test_tiers import _env, config  # noqa: F401
from dynamic_assets_tests.support.runs import run_version
from dynamic_assets_tests.support.tiers import curated, tier_decls  # noqa: F401

KEY = dg.AssetKey(["lifecycle", "pass"])


def latest_observation(instance: dg.DagsterInstance, dataset: str, version: str) -> dict | None:
    """The metadata of the partition's latest observation (None when it has none)."""
    found = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=curated_key(dataset), asset_partitions=[version]),
        limit=1,
    ).records
    if not found:
        return None
    observation = found[0].asset_observation
    assert observation is not None and observation.partition == version
    return {k: v.value for k, v in observation.metadata.items()}


def test_curated_materialization_says_the_version_is_in_core(defs, instance):
    assert run_version(defs, instance, "market", "2024-06-01").success
    event = instance.get_latest_materialization_event(curated_key("market"))
    assert event is not None and event.asset_materialization is not None
    assert event.asset_materialization.partition == "2024-06-01"
    assert event.asset_materialization.metadata["tier"].value == "core"


def test_pass_reports_the_tier_of_each_moved_version_on_its_partition(
    settings,
    tier_decls,  # noqa: F811
    curated,  # noqa: F811
    pg_server,
    instance,
    monkeypatch,
):
    from dynamic_assets.definitions import build_defs
    from dynamic_assets_tests.support.postgres import create_database

    main_url = pg_server.get_uri(create_database(pg_server, "main"))
    monkeypatch.setenv("MAIN_DB_URL", main_url)
    tier_decls.storage.core.budget_mb = 500
    tier_decls.storage.main = MainTier(url_env="MAIN_DB_URL")
    tier_decls.dataset("market").lifecycle = Lifecycle(hot_versions=1)
    defs = build_defs(settings, tier_decls)
    assert latest_observation(instance, "market", "2024-06-01") is None
    result = dg.materialize([defs.get_assets_def(KEY)], resources=defs.resources, instance=instance)
    assert result.success

    seen = latest_observation(instance, "market", "2024-06-01")
    assert seen is not None, "the moved version's partition has no observation"
    assert seen["tier"] == "main"
    assert "main" in seen["location"] and main_url not in str(seen)
    assert "password" not in str(seen).lower()
    assert seen["moved_at"] > 0
    # A version that did not move has no tier observation.
    assert latest_observation(instance, "market", "2024-07-01") is None


def test_headless_lifecycle_and_restore_record_the_tier_in_the_homes_instance(
    curated,  # noqa: F811
    tmp_path,
    drive_root,
    db_url,
    config,  # noqa: F811
    monkeypatch,
):
    env = _env(tmp_path, drive_root, db_url, config())
    with curated.connect() as conn:
        conn.execute(
            "UPDATE public.datasets SET curated_at = now() - interval '40 days' "
            "WHERE name = 'market' AND version = '2024-06-01'"
        )
    runner = CliRunner()
    moved = runner.invoke(main, ["lifecycle"], env=env)
    assert moved.exit_code == 0, moved.output
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DAGSTER_HOME")
    settings = Settings.from_env()
    with dagster_instance(settings) as instance:
        seen = latest_observation(instance, "market", "2024-06-01")
    assert seen is not None, "the headless pass recorded nothing in the home's instance"
    assert seen["tier"] == "archive"
    assert seen["location"].startswith("archive/market/2024-06-01/")
    assert seen["location"].endswith("_archive.parquet")

    back = runner.invoke(main, ["restore", "market", "2024-06-01"], env=env)
    assert back.exit_code == 0, back.output
    with dagster_instance(settings) as instance:
        seen = latest_observation(instance, "market", "2024-06-01")
    assert seen is not None and seen["tier"] == "core"
    assert seen["location"] == "ai_curated.market"


def test_pass_reports_a_deleted_version_on_its_partition(
    settings,
    tier_decls,  # noqa: F811
    curated,  # noqa: F811
    instance,
):
    from dynamic_assets.definitions import build_defs

    tier_decls.dataset("market").lifecycle = Lifecycle(hot_versions=1, delete_after_days=1)
    with curated.connect() as conn:
        conn.execute(
            "UPDATE public.datasets SET curated_at = now() - interval '2 days' "
            "WHERE name = 'market' AND version = '2024-06-01'"
        )
    defs = build_defs(settings, tier_decls)
    result = dg.materialize([defs.get_assets_def(KEY)], resources=defs.resources, instance=instance)
    assert result.success
    meta = result.asset_materializations_for_node("lifecycle__pass")[0].metadata
    assert "market 2024-06-01 deleted" in meta["deletions"].value

    seen = latest_observation(instance, "market", "2024-06-01")
    assert seen is not None and seen["tier"] == "deleted"
    assert seen["location"] == "no tier"
