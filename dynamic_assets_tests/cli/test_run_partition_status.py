"""What the Dagster UI colours a version's partitions after `dynamic-assets run`: a version whose
staging checks fail is failed on its staging asset only; the assets after it (curated,
fingerprint, attestation), which never ran for it, are missing, not failed."""

from __future__ import annotations

import dagster as dg
import pytest
from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets.settings import Settings
from dynamic_assets_tests.cli.test_dev import user_env
from dynamic_assets_tests.cli.test_dev_ui import seed_with_a_bad_version

pytestmark = pytest.mark.filterwarnings("ignore")

BAD_VERSION = "2024-08-01"
GOOD_VERSION = "2024-07-01"


def test_a_version_failed_at_staging_is_failed_on_its_staging_asset_only(
    tmp_path, db_url, monkeypatch
):
    from dynamic_assets.defs.headless import dagster_instance

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    env = user_env(tmp_path, db_url)
    seed_with_a_bad_version(env, tmp_path / "drive")
    ran = CliRunner().invoke(
        main, ["run", "--dataset", "market", "--no-train"], env={**env, "DAGSTER_HOME": ""}
    )
    assert ran.exit_code == 1, ran.output

    instance = dagster_instance(Settings.from_env(env))
    try:
        versions = dg.DynamicPartitionsDefinition(name="market_versions")

        def status(key: str) -> dict:
            return instance.get_status_by_partition(
                dg.AssetKey(key.split("/")), [GOOD_VERSION, BAD_VERSION], versions
            )

        assert status("ai_raw/market") == {
            GOOD_VERSION: dg.AssetPartitionStatus.MATERIALIZED,
            BAD_VERSION: dg.AssetPartitionStatus.FAILED,
        }
        for key in (
            "ai_curated/market",
            "provenance/market/fingerprint",
            "provenance/market/attestation",
        ):
            # None: missing, as Dagster reports a partition with no run that planned it failed.
            assert status(key) == {
                GOOD_VERSION: dg.AssetPartitionStatus.MATERIALIZED,
                BAD_VERSION: None,
            }, key
    finally:
        instance.dispose()
