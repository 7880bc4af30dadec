"""What the Dagster UI colours a version's partitions after the sensor's runs: a version whose
staging checks fail is failed on its staging asset only; curated, fingerprint and attestation,
which never ran for it, are missing, not failed."""

from __future__ import annotations

import shutil

import dagster as dg

from dynamic_assets_tests.support.drive_files import edit_cell
from dynamic_assets_tests.support.runs import run_all, tick

BAD_VERSION = "2024-08-01"
GOOD_VERSION = "2024-07-01"


def test_a_version_failed_at_staging_leaves_its_later_assets_missing(defs, instance, drive_root):
    market = drive_root / "datasets" / "market"
    shutil.copytree(market / GOOD_VERSION, market / BAD_VERSION)
    edit_cell(market / BAD_VERSION / "nasdaq.csv", 4, 6, lambda close: "-" + close)

    outcomes = run_all(defs, instance, tick(defs, instance))
    assert outcomes[("market", GOOD_VERSION)].success
    assert not outcomes[("market", BAD_VERSION)].success

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
        # None: missing, as Dagster reports a partition no failed run planned.
        assert status(key) == {
            GOOD_VERSION: dg.AssetPartitionStatus.MATERIALIZED,
            BAD_VERSION: None,
        }, key
