"""One dynamic partitions definition per dataset: its version folders.

The assets and the sensor import the same objects from here.
"""

from __future__ import annotations

from functools import cache

import dagster as dg


def partitions_name(dataset: str) -> str:
    return f"{dataset}_versions"


@cache
def versions_partitions(dataset: str) -> dg.DynamicPartitionsDefinition:
    return dg.DynamicPartitionsDefinition(name=partitions_name(dataset))
