"""What a curated version's page in the Dagster UI says of it: the checks that gated it, each with
its result for that version and a link to it, and the version's state."""

from __future__ import annotations

import dagster as dg

from dynamic_assets.defs.datasets.assets import curated_key
from dynamic_assets_tests.support.runs import run_version

GATING = ["rows_castable", "close_between", "volume_between", "symbol_match_regex"]


def curated_metadata(instance: dg.DagsterInstance, version: str) -> dict:
    event = instance.get_latest_materialization_event(curated_key("market"))
    assert event is not None
    materialization = event.asset_materialization
    assert materialization is not None and materialization.partition == version
    return materialization.metadata


def test_a_curated_version_names_the_checks_that_gated_it_with_their_results(defs, instance):
    assert run_version(defs, instance, "market", "2024-06-01").success
    meta = curated_metadata(instance, "2024-06-01")
    table = meta["gating_checks"].value
    lines = table.splitlines()
    assert lines[0] == "| check | result |"
    rows = lines[2:]
    assert rows == [
        f"| [{name}](/assets/ai_raw/market?view=checks&checkDetail={name}) | passed |"
        for name in GATING
    ]
    assert meta["state"].value == "curated"
