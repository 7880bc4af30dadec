"""Each version's tier on its `ai_curated/<dataset>` partition: an `AssetObservation` of the
partition with `tier`, `location` (never a credential) and `moved_at`, reported after each move,
restore or deletion, by the lifecycle asset in its run and by `dynamic-assets lifecycle` and
`restore` into the home's instance (`defs/headless/instance.py: dagster_instance`)."""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from dynamic_assets.defs.datasets.assets import curated_key
from dynamic_assets.lifecycle.placement import Placement


def tier_observation(found: Placement) -> dg.AssetObservation:
    return dg.AssetObservation(
        asset_key=curated_key(found.dataset),
        partition=found.version,
        description=f"{found.dataset} {found.version} is in the {found.tier} tier",
        metadata={
            "tier": found.tier,
            "location": found.location,
            "moved_at": dg.MetadataValue.timestamp(found.moved_at),
        },
    )


def report_placements(instance: dg.DagsterInstance, placements: Iterable[Placement]) -> None:
    """Record each placement on its partition in `instance`, outside any run."""
    for found in placements:
        instance.report_runless_asset_event(tier_observation(found))
