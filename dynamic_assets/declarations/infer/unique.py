"""Uniqueness of sampled values in bounded memory: each value becomes a 64-bit key."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_UNIQUE_CHECK_EVERY = 1_000_000  # keys buffered before a uniqueness check


class UniqueKeys:
    """Whether 64-bit keys are all distinct so far: 8 bytes a key, checked every so often."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.pending = 0
        self.ok = True

    def add(self, keys: np.ndarray) -> None:
        if not self.ok:
            return
        self.chunks.append(keys)
        self.pending += len(keys)
        if self.pending >= _UNIQUE_CHECK_EVERY:
            self.check()

    def check(self) -> bool:
        if self.ok and len(self.chunks) > 0 and self.pending:
            keys = np.concatenate(self.chunks) if len(self.chunks) > 1 else self.chunks[0]
            if np.unique(keys).size != keys.size:
                self.ok = False
                self.chunks = []
            else:
                self.chunks = [keys]
            self.pending = 0
        return self.ok

    def restart(self) -> bool:
        """Starts a new version: keys seen so far no longer count. Returns whether still unique."""
        ok = self.check()
        self.chunks = []
        return ok


def value_keys(values: Any) -> np.ndarray:
    """64-bit keys of non-null values: equal values get equal keys (within one run)."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        t = values.type
        if pa.types.is_dictionary(t):
            values = values.dictionary_decode()
            t = values.type
        if pa.types.is_integer(t) or pa.types.is_boolean(t):
            return np.asarray(pc.cast(values, pa.int64(), safe=False).to_numpy(), np.int64)
        if pa.types.is_timestamp(t):
            values = pc.cast(values, pa.timestamp("us", t.tz), safe=False)
            return np.asarray(pc.cast(values, pa.int64()).to_numpy(), np.int64)
        if pa.types.is_date(t):
            values = pc.cast(pc.cast(values, pa.date32()), pa.int32())
            return np.asarray(values.to_numpy(), np.int64)
        values = values.to_pylist()
    return np.fromiter((hash(v) for v in values), np.int64, len(values))


def mix_keys(keys: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: spreads 64-bit keys so that pairs of them combine well."""
    z = keys.view(np.uint64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))
