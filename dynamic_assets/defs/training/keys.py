"""Asset keys and job names of the training assets (apart, so the CLI can name them without
building the assets)."""

from __future__ import annotations

import dagster as dg


def model_key(model: str) -> dg.AssetKey:
    return dg.AssetKey(["models", model])


def train_job_name(model: str) -> str:
    return f"train_{model}"
