"""The `@dg.asset` arguments shared by every asset of one declared dataset (its version
partitions, group, owners and sensitivity tag), and the owners Dagster accepts."""

from __future__ import annotations

from typing import TypedDict

import dagster as dg

from dynamic_assets.declarations.model import Dataset
from dynamic_assets.defs.datasets.partitions import versions_partitions


class DatasetAssetArgs(TypedDict):
    """Keyword arguments of `@dg.asset` common to a dataset's assets."""

    partitions_def: dg.DynamicPartitionsDefinition
    group_name: str
    owners: list[str] | None
    tags: dict[str, str]


def dagster_owners(owners: list[str]) -> list[str] | None:
    """The declared owners Dagster accepts (an email or `team:<name>`), or None if none is."""
    return [o for o in owners if "@" in o or o.startswith("team:")] or None


def dataset_asset_args(ds: Dataset) -> DatasetAssetArgs:
    """The arguments every asset of `ds` is declared with."""
    return DatasetAssetArgs(
        partitions_def=versions_partitions(ds.name),
        group_name=ds.name,
        owners=dagster_owners(ds.owners),
        tags={"sensitivity": ds.sensitivity},
    )
