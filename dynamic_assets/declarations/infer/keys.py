"""Primary key candidates: a unique ``id``-like column, else the unique column or pair of
columns that ends earliest, checked version by version over the sample."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np

from dynamic_assets.declarations.infer.samples import read_sample, version_of
from dynamic_assets.declarations.infer.types import Sample
from dynamic_assets.declarations.infer.unique import UniqueKeys, mix_keys, value_keys
from dynamic_assets.declarations.model import Column

COMPOSITE_KEY_CANDIDATES = 5  # composite keys are pairs among the first 5 eligible columns
_CAMEL_ID = re.compile(r"^.*[a-z0-9](Id|ID)$")
_SNAKE_ID = re.compile(r"^(.*[_\- ])?(id|ID|Id)$")


def _is_id_name(name: str) -> bool:
    return bool(_SNAKE_ID.match(name) or _CAMEL_ID.match(name))


def guess_primary_key(
    sample: Sample, columns: list[Column], files: list[tuple[Path, str]], sample_rows: int
) -> list[str]:
    """A primary key the sample does not contradict, or [] when there is no good guess.

    In order: a unique column named ``id`` or ``*_id``/``*Id``; else the unique integer or string
    column, or the unique pair among the first few non-null, non-float columns, that ends earliest
    in the column order (a single column first when both end at the same place). Key columns
    usually lead a table, so a pair like [date, symbol] wins over a ``volume`` column that
    happens to be unique in the sample.
    """
    if not sample.rows:
        return []

    def unique(col: Column) -> bool:
        stats = sample.columns[col.name]
        return (
            not col.nullable
            and col.type in ("integer", "string")
            and stats.unique is not None
            and stats.unique.check()
        )

    ids = [c for c in columns if _is_id_name(c.name) and unique(c)]
    if ids:
        exact = [c for c in ids if c.name.lower() == "id"]
        return [(exact or ids)[0].name]
    if sample.rows < 2:
        return []  # one row is unique in every column: no evidence

    position = {c.name: i for i, c in enumerate(columns)}
    single = next((c.name for c in columns if unique(c)), None)
    candidates = [
        c.name
        for c in columns
        if not c.nullable and c.type in ("integer", "string", "boolean", "date", "timestamp")
    ][:COMPOSITE_KEY_CANDIDATES]
    pairs = sorted(
        (
            (a, b)
            for a, b in itertools.combinations(candidates, 2)
            if single is None or position[b] < position[single]
        ),
        key=lambda ab: (position[ab[1]], position[ab[0]]),
    )
    if not pairs:
        return [single] if single else []

    # A second pass over the same sample, keeping only the keys of the candidate pairs.
    needed = sorted({n for pair in pairs for n in pair}, key=position.__getitem__)
    trackers = {pair: UniqueKeys() for pair in pairs}
    group = None
    for path, fmt in files:
        if version_of(path) != group:
            group = version_of(path)
            for tracker in trackers.values():
                tracker.restart()
        for batch in read_sample(path, fmt, sample_rows):
            keys = {n: value_keys(batch.columns[n]) for n in needed}
            mixed = {n: mix_keys(k) for n, k in keys.items()}
            for (a, b), tracker in trackers.items():
                tracker.add(mix_keys(mixed[a] ^ keys[b].view(np.uint64)).view(np.int64))
        for tracker in trackers.values():
            tracker.check()
    for pair, tracker in trackers.items():
        if tracker.check():
            return list(pair)
    return [single] if single else []
