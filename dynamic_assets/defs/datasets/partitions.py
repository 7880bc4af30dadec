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
    """Register `version` as a partition of the dataset's assets unless it is one already.

    Another process sharing the instance may register it at the same moment: the storage's
    unique constraint refuses the second insert, and the partition is there."""
    from sqlalchemy.exc import IntegrityError

    name = partitions_name(dataset)
    if instance.has_dynamic_partition(name, version):
        return
    try:
        instance.add_dynamic_partitions(name, [version])
    except IntegrityError:
        if not instance.has_dynamic_partition(name, version):
            raise
