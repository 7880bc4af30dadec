"""The demo `embeddings` dataset: 16-dimensional unit vectors that cluster by label, as
Parquet; the second version re-embeds some items and adds new ones."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dynamic_assets.declarations.model import Dataset
from dynamic_assets.demo.generate import (
    SEED_VERSIONS,
    GeneratedFile,
    GeneratedVersion,
    fixed_time,
)

# What the generator writes: column -> (declared type, whether it ever writes a null).
CONTRACT: dict[str, tuple[str, bool]] = {
    "item_id": ("integer", False),
    "label": ("string", False),
    "score": ("float", True),
    "created_at": ("timestamp", False),
    "embedding": ("vector(16)", False),
}


_LABELS = ("electronics", "apparel", "grocery", "home_garden", "books", "toys")
_LABEL_SHARES = np.array([0.24, 0.2, 0.18, 0.16, 0.12, 0.1])
_DIM = 16
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)).astype(np.float32)


def _micros(rng: np.random.Generator, n: int, first: date, days: int) -> np.ndarray:
    base = int((datetime(first.year, first.month, first.day, tzinfo=UTC) - _EPOCH).total_seconds())
    return np.sort(base * 1_000_000 + rng.integers(0, days * 86_400_000_000, n))


def generate(ds: Dataset, rng: np.random.Generator, scale: int) -> list[GeneratedVersion]:
    v1, v2 = SEED_VERSIONS["embeddings"]
    created = {v1: fixed_time(rng, date(2024, 6, 10)), v2: fixed_time(rng, date(2024, 6, 17))}
    centroids = _unit(rng.standard_normal((len(_LABELS), _DIM)))

    def items(n: int, first_id: int, first: date, days: int) -> dict[str, np.ndarray]:
        label = rng.choice(len(_LABELS), n, p=_LABEL_SHARES)
        score = rng.beta(6.0, 2.0, n)
        return {
            "item_id": first_id + np.cumsum(rng.integers(1, 50, n)),
            "label": label,
            "score": score,
            "null": rng.random(n) < 0.07,
            "created_at": _micros(rng, n, first, days),
            "embedding": _unit(centroids[label] + rng.normal(0.0, 0.18, (n, _DIM))),
        }

    old = items(300 * scale, 100_000, date(2024, 5, 20), 20)

    # v2.3.1 re-scores some items, re-embeds others and appends new ones.
    new = {k: a.copy() for k, a in old.items()}
    n = len(old["item_id"])
    rescored = rng.random(n) < 0.15
    new["score"][rescored] = np.clip(
        new["score"][rescored] + rng.normal(0, 0.05, rescored.sum()), 0, 1
    )
    new["null"][rescored] = False
    reembedded = rng.random(n) < 0.10
    k = int(reembedded.sum())
    new["embedding"][reembedded] = _unit(
        centroids[new["label"][reembedded]] + rng.normal(0.0, 0.18, (k, _DIM))
    )
    new["created_at"][reembedded] = _micros(rng, k, date(2024, 6, 10), 6)
    added = items(30 * scale, int(old["item_id"][-1]), date(2024, 6, 10), 6)
    new = {key: np.concatenate([new[key], added[key]]) for key in new}

    names = [col.name for col in ds.columns]
    fields = {
        "item_id": pa.field("item_id", pa.int64(), nullable=False),
        "label": pa.field("label", pa.string(), nullable=False),
        "score": pa.field("score", pa.float64()),
        "created_at": pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
        "embedding": pa.field("embedding", pa.list_(pa.float32()), nullable=False),
    }

    def parquet(data: dict[str, np.ndarray]) -> GeneratedFile:
        rows = len(data["item_id"])
        arrays = {
            "item_id": pa.array(data["item_id"], pa.int64()),
            "label": pa.array([_LABELS[i] for i in data["label"]], pa.string()),
            "score": pa.array(data["score"], pa.float64(), mask=data["null"]),
            "created_at": pa.array(data["created_at"], pa.timestamp("us", tz="UTC")),
            "embedding": pa.ListArray.from_arrays(
                pa.array(np.arange(0, (rows + 1) * _DIM, _DIM, dtype=np.int32)),
                pa.array(data["embedding"].reshape(-1), pa.float32()),
            ),
        }
        table = pa.Table.from_arrays(
            [arrays[k] for k in names], schema=pa.schema([fields[k] for k in names])
        )
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        return GeneratedFile("items.parquet", sink.getvalue().to_pybytes(), rows)

    return [
        GeneratedVersion(
            v1,
            created[v1],
            f"{len(old['item_id'])} item embeddings ({_DIM} dimensions) in {len(_LABELS)} label clusters.",
            [parquet(old)],
        ),
        GeneratedVersion(
            v2,
            created[v2],
            f"Patch release of {v1}: re-scores {int(rescored.sum())} items, re-embeds {k} and "
            f"adds {len(added['item_id'])} new ones.",
            [parquet(new)],
        ),
    ]
