"""What the demo's data generators share: the versions they write, the files of a version as
they return them, and the seeded randomness (release moments, Faker instances) they draw from.

Everything is derived from the seed and from fixed dates, never from the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
from faker import Faker

SEED_VERSIONS: dict[str, list[str]] = {
    "market": ["2024-06-01", "2024-07-01"],
    "corpus": ["v1.0", "v1.1"],
    "embeddings": ["v2.3", "v2.3.1"],
}


@dataclass(frozen=True)
class GeneratedFile:
    """One data file of a generated version: its name, bytes and row count."""

    name: str
    data: bytes
    rows: int


@dataclass(frozen=True)
class GeneratedVersion:
    """One generated version: its release moment, a summary for its README, and its files."""

    version: str
    created: datetime
    summary: str
    files: list[GeneratedFile]


def fixed_time(rng: np.random.Generator, day: date, hour: int = 5) -> datetime:
    """A release moment on ``day``, a seed-derived number of minutes after ``hour`` UTC."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC) + timedelta(
        minutes=int(rng.integers(0, 240))
    )


def faker(locale: str, rng: np.random.Generator) -> Faker:
    """A Faker for `locale`, seeded from `rng`."""
    fake = Faker(locale)
    fake.seed_instance(int(rng.integers(0, 2**31)))
    return fake
