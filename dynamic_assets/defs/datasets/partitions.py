"""One dynamic partitions definition per dataset: its version folders.

The assets, the sensor, the schedule and the headless run import the same objects from here.
"""

from __future__ import annotations

from functools import cache

import dagster as dg


def partitions_name(dataset: str) -> str:
    return f"{dataset}_versions"


@cache
def versions_partitions(dataset: str) -> dg.DynamicPartitionsDefinition:
    return dg.DynamicPartitionsDefinition(name=partitions_name(dataset))


def ensure_partition(instance: dg.DagsterInstance, dataset: str, version: str) -> None:
    """Register `version` as a partition of the dataset's assets unless it is one already."""
    name = partitions_name(dataset)
    if not instance.has_dynamic_partition(name, version):
        instance.add_dynamic_partitions(name, [version])
