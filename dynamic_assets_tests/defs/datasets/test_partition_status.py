"""What the Dagster UI colours a version's partitions after the sensor's runs: a version whose
staging checks fail is failed on its staging asset only; curated, fingerprint and attestation,
which never ran for it, are missing, not failed."""

from __future__ import annotations

import shutil

import dagster as dg
import pytest
from dagster._core.storage.tags import BACKFILL_ID_TAG as BACKFILL_TAG

from dynamic_assets_tests.support.drive_files import edit_cell, edit_line
from dynamic_assets_tests.support.runs import curate_follow_up, run_all, run_request, tick

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


def _misses_a_declared_column(drive_root) -> None:
    """The bad version: a copy of the good one whose CSV header names `close` otherwise."""
    market = drive_root / "datasets" / "market"
    shutil.copytree(market / GOOD_VERSION, market / BAD_VERSION)
    edit_line(market / BAD_VERSION / "nasdaq.csv", 0, lambda h: h.replace(",close,", ",closing,"))


def _statuses(instance, versions: list[str]) -> dict[str, dict]:
    partitions = dg.DynamicPartitionsDefinition(name="market_versions")
    return {
        key: instance.get_status_by_partition(dg.AssetKey(key.split("/")), versions, partitions)
        for key in (
            "ai_raw/market",
            "ai_curated/market",
            "provenance/market/fingerprint",
            "provenance/market/attestation",
        )
    }


@pytest.mark.parametrize(
    "tags",
    [
        {BACKFILL_TAG: "abcdefgh"},  # a backfill's runs
        {},  # the job launched for one partition from the launchpad
    ],
    ids=["backfill", "launchpad"],
)
def test_a_run_of_the_whole_ingest_job_leaves_a_bad_versions_later_assets_missing(
    defs, instance, drive_root, tags
):
    """What the daemon runs for a backfill of `ingest_market` (or a launch of the job) from the
    UI: the job's whole selection for each partition, then what the curate sensor requests."""
    _misses_a_declared_column(drive_root)
    instance.add_dynamic_partitions("market_versions", [GOOD_VERSION, BAD_VERSION])
    job = defs.get_job_def("ingest_market")
    for version in (GOOD_VERSION, BAD_VERSION):
        done = job.execute_in_process(
            partition_key=version,
            instance=instance,
            raise_on_error=False,
            tags=tags or None,
        )
        assert done.success == (version == GOOD_VERSION)
        # The run queue's per-version limit applies to it as to the sensor's runs.
        assert done.dagster_run.tags["dynamic_assets/version"] == f"market/{version}"
        follow = curate_follow_up(defs, instance, done)
        if follow is not None:
            assert run_request(defs, instance, follow).success

    statuses = _statuses(instance, [GOOD_VERSION, BAD_VERSION])
    assert statuses.pop("ai_raw/market") == {
        GOOD_VERSION: dg.AssetPartitionStatus.MATERIALIZED,
        BAD_VERSION: dg.AssetPartitionStatus.FAILED,
    }
    for key, status in statuses.items():
        assert status == {GOOD_VERSION: dg.AssetPartitionStatus.MATERIALIZED, BAD_VERSION: None}, (
            key
        )
