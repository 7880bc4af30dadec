"""Asset keys of the provenance assets (kept apart so the ingest job can name them without
importing the assets)."""

from __future__ import annotations

import dagster as dg


def fingerprint_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey(["provenance", dataset, "fingerprint"])


def attestation_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey(["provenance", dataset, "attestation"])


def provenance_keys(dataset: str) -> list[dg.AssetKey]:
    """The provenance assets of a dataset, in the order they run."""
    return [fingerprint_key(dataset), attestation_key(dataset)]
