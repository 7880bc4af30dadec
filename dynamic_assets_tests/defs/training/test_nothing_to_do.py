"""A training run with nothing to do (a model trained on the latest version only, run for an
older one) is not a failure anywhere: the run succeeds and the model's partition records the skip
with its reason, so the UI (and a backfill, which counts a targeted partition left without a
materialization as failed) shows it done, not red or half-filled."""

from __future__ import annotations

import dagster as dg

from dynamic_assets.defs.training.keys import model_key, train_job_name
from dynamic_assets_tests.support.runs import run_version

V1, V2 = "2024-06-01", "2024-07-01"
RANGE = "market_next_range"  # declared `versions: latest`


def test_a_skipped_version_is_recorded_as_skipped_not_left_unmaterialized(defs, instance):
    for version in (V1, V2):
        assert run_version(defs, instance, "market", version).success
    result = run_version(defs, instance, "market", V1, job=train_job_name(RANGE))
    assert result.success
    records = materializations(instance, V1)
    assert records, "the skipped version has no materialization: a backfill fails it"
    meta = records[0].asset_materialization.metadata
    assert meta["trained"].value is False
    assert meta["skipped"].value == (
        f"nothing to do: {RANGE} trains on the latest market version only ({V2})"
    )
    assert materializations(instance, V2) == []


def materializations(instance, version: str) -> list:
    filt = dg.AssetRecordsFilter(asset_key=model_key(RANGE), asset_partitions=[version])
    return list(instance.fetch_materializations(filt, limit=10).records)
