"""Primary key candidates: a unique ``id``-like column, else the unique column (a date or
timestamp too) or pair of columns that ends earliest, checked version by version over the
sample; when there is none, why."""

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
SINGLE_KEY_TYPES = ("integer", "string", "date", "timestamp")  # types of a one-column key
_CAMEL_ID = re.compile(r"^.*[a-z0-9](Id|ID)$")
_SNAKE_ID = re.compile(r"^(.*[_\- ])?(id|ID|Id)$")


def _is_id_name(name: str) -> bool:
    return bool(_SNAKE_ID.match(name) or _CAMEL_ID.match(name))


def guess_primary_key(
    sample: Sample, columns: list[Column], files: list[tuple[Path, str]], sample_rows: int
) -> tuple[list[str], str | None]:
    """A primary key the sample does not contradict, or [] and why there is no good guess.

    In order: a unique column named ``id`` or ``*_id``/``*Id``; else the unique integer, string,
    date or timestamp column, or the unique pair among the first few non-null, non-float
    columns, that ends earliest in the column order (a single column first when both end at the
    same place). Key columns usually lead a table, so a pair like [date, symbol] wins over a
    ``volume`` column that happens to be unique in the sample, and a wide price table
    (``date, GOOG, AAPL, ...``) is keyed by its date.
    """
    if not sample.rows:
        return [], "the sample has no rows"

    def unique(col: Column) -> bool:
        stats = sample.columns[col.header]
        return (
            not col.nullable
            and col.type in SINGLE_KEY_TYPES
            and stats.unique is not None
            and stats.unique.check()
        )

    ids = [c for c in columns if _is_id_name(c.name) and unique(c)]
    if ids:
        exact = [c for c in ids if c.name.lower() == "id"]
        return [(exact or ids)[0].name], None
    if sample.rows < 2:
        return [], "the sample has 1 row, which cannot show which columns are unique"

    position = {c.name: i for i, c in enumerate(columns)}
    header = {c.name: c.header for c in columns}
    single = next((c.name for c in columns if unique(c)), None)
    candidates = [
        c.name
        for c in columns
        if not c.nullable and c.type in ("integer", "string", "boolean", "date", "timestamp")
    ][:COMPOSITE_KEY_CANDIDATES]
    if len(candidates) > 1:
        why = (
            f"no column, nor pair of columns among {', '.join(candidates)}, is unique and "
            f"never empty over the {sample.rows} rows read"
        )
    else:
        why = (
            f"no {', '.join(SINGLE_KEY_TYPES)} column is unique and never empty over the "
            f"{sample.rows} rows read"
        )
    pairs = sorted(
        (
            (a, b)
            for a, b in itertools.combinations(candidates, 2)
            if single is None or position[b] < position[single]
        ),
        key=lambda ab: (position[ab[1]], position[ab[0]]),
    )
    if not pairs:
        return ([single], None) if single else ([], why)

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
            keys = {n: value_keys(batch.columns[header[n]]) for n in needed}
            mixed = {n: mix_keys(k) for n, k in keys.items()}
            for (a, b), tracker in trackers.items():
                tracker.add(mix_keys(mixed[a] ^ keys[b].view(np.uint64)).view(np.int64))
        for tracker in trackers.values():
            tracker.check()
    for pair, tracker in trackers.items():
        if tracker.check():
            return list(pair), None
    return ([single], None) if single else ([], why)
