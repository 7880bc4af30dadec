"""Registry rows of training: `models`, `experiments` and `model_checkpoints`.

`models` holds one row per trained run (name, version = the run folder / MLflow run id, the
`datasets` row it was trained on, metrics, where its checkpoint lives, and in `metadata` the data
fingerprint, the model configuration's hash and the MLflow run). `experiments` holds one row per
training run the pipeline made. `model_checkpoints` holds every run folder seen under the drive's
`model-checkpoints/`, with the reason it cannot be traced to curated data when it cannot.
`pending_training` says which curated versions a declared model has no run for yet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from dynamic_assets.datasets import pointers
from dynamic_assets.db.connection import scalar
from dynamic_assets.declarations.model import Declarations, Model
from dynamic_assets.declarations.names import version_sort_key
from dynamic_assets.training.identity import config_hash

CHECKPOINT_STATUSES = ("registered", "missing_metadata", "invalid_metadata", "unknown_fingerprint")


def _json(value: Any) -> Jsonb:
    return Jsonb(json.loads(json.dumps(value, default=str)))


@dataclass(frozen=True)
class TrainedModel:
    """A `models` row."""

    id: int
    name: str
    version: str
    dataset_id: int | None
    framework: str | None
    performance_metrics: dict[str, Any]
    deployment_locations: dict[str, Any]
    metadata: dict[str, Any]
    created_at: datetime


_MODEL_COLUMNS = (
    "id, name, version, dataset_id, framework, performance_metrics, deployment_locations, "
    "metadata, created_at"
)


def _model(row: tuple) -> TrainedModel:
    return TrainedModel(
        int(row[0]),
        row[1],
        row[2],
        row[3],
        row[4],
        row[5] or {},
        row[6] or {},
        row[7] or {},
        row[8],
    )


def dataset_id(conn: psycopg.Connection, dataset: str, version: str) -> int | None:
    """The `datasets` row id of a curated version, or None."""
    row = conn.execute(
        "SELECT id FROM public.datasets WHERE name = %s AND version = %s AND status = 'curated'",
        (dataset, version),
    ).fetchone()
    return int(row[0]) if row else None


def registered_fingerprint(conn: psycopg.Connection, dataset: str, version: str) -> str | None:
    """The fingerprint the `datasets` registry holds for a curated version, or None."""
    row = conn.execute(
        "SELECT fingerprint FROM public.datasets "
        "WHERE name = %s AND version = %s AND status = 'curated'",
        (dataset, version),
    ).fetchone()
    return row[0] if row and row[0] else None


def find_trained(
    conn: psycopg.Connection, model: str, fingerprint: str, config_hash: str
) -> TrainedModel | None:
    """The latest model row trained on exactly this data with exactly this configuration."""
    row = conn.execute(
        f"""SELECT {_MODEL_COLUMNS} FROM public.models
             WHERE name = %s AND metadata->>'data_fingerprint' = %s
               AND metadata->>'config_hash' = %s
             ORDER BY created_at DESC, id DESC LIMIT 1""",
        (model, fingerprint, config_hash),
    ).fetchone()
    return _model(row) if row else None


@dataclass(frozen=True)
class Pending:
    """A curated version a model has no run for with its current fingerprint and configuration."""

    model: Model
    version: str
    fingerprint: str


def pending_training(
    conn: psycopg.Connection, decls: Declarations, dataset: str | None = None
) -> list[Pending]:
    """(model, version) pairs whose current fingerprint has no run with the model's current
    configuration; `versions: latest` models only consider their dataset's newest version,
    `versions: current` ones its current version (`datasets.pointers`)."""
    found: list[Pending] = []
    for model in decls.models:
        if dataset and model.dataset != dataset:
            continue
        rows = conn.execute(
            "SELECT version, fingerprint FROM public.datasets "
            "WHERE name = %s AND status = 'curated' AND fingerprint IS NOT NULL",
            (model.dataset,),
        ).fetchall()
        versions = sorted(rows, key=lambda r: version_sort_key(r[0]))
        if model.versions == "latest":
            versions = versions[-1:]
        elif model.versions == "current":
            current = pointers.current_version(conn, model.dataset)
            versions = [r for r in versions if r[0] == current]
        chash = config_hash(model)
        for version, fp in versions:
            if find_trained(conn, model.name, fp, chash) is None:
                found.append(Pending(model, version, fp))
    return found


def get_model(conn: psycopg.Connection, name: str, version: str) -> TrainedModel | None:
    row = conn.execute(
        f"SELECT {_MODEL_COLUMNS} FROM public.models WHERE name = %s AND version = %s",
        (name, version),
    ).fetchone()
    return _model(row) if row else None


def register_model(
    conn: psycopg.Connection,
    *,
    name: str,
    version: str,
    dataset_id: int | None,
    framework: str | None,
    performance_metrics: dict[str, Any],
    deployment_locations: dict[str, Any],
    metadata: dict[str, Any],
    replace: bool = True,
) -> tuple[int, bool]:
    """Insert (or, with `replace`, update) the `models` row of (name, version).

    Returns the row id and whether this call wrote it (False: it existed and `replace` is off).
    """
    conflict = (
        """DO UPDATE SET dataset_id = EXCLUDED.dataset_id, framework = EXCLUDED.framework,
               performance_metrics = EXCLUDED.performance_metrics,
               deployment_locations = EXCLUDED.deployment_locations,
               metadata = EXCLUDED.metadata"""
        if replace
        else "DO NOTHING"
    )
    row = conn.execute(
        f"""INSERT INTO public.models
                (name, version, dataset_id, framework, performance_metrics, deployment_locations,
                 metadata)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (name, version) {conflict}
            RETURNING id""",
        (
            name,
            version,
            dataset_id,
            framework,
            _json(performance_metrics),
            _json(deployment_locations),
            _json(metadata),
        ),
    ).fetchone()
    if row is not None:
        return int(row[0]), True
    existing = get_model(conn, name, version)
    assert existing is not None  # the conflict was on this row
    return existing.id, False


def record_experiment(
    conn: psycopg.Connection,
    *,
    name: str,
    dataset_version: str,
    model_version: str,
    parameters: dict[str, Any],
    results: dict[str, Any],
    git_commit: str | None,
) -> int:
    """The `experiments` row of one training run (one per (name, model_version))."""
    row = conn.execute(
        "SELECT id FROM public.experiments WHERE name = %s AND model_version = %s",
        (name, model_version),
    ).fetchone()
    if row is not None:
        return int(row[0])
    new_id = scalar(
        conn,
        """INSERT INTO public.experiments
               (name, dataset_version, model_version, parameters, results, git_commit)
           VALUES (%s, %s, %s, %s, %s, %s) RETURNING id""",
        (name, dataset_version, model_version, _json(parameters), _json(results), git_commit),
    )
    return int(new_id)


def fingerprint_known(
    conn: psycopg.Connection, dataset: str, version: str, fingerprint: str
) -> str | None:
    """How the registry knows this fingerprint of the dataset version: `current` (the version's
    fingerprint now), `attested` (a proof was issued for it, the version changed since), or None."""
    current = conn.execute(
        "SELECT 1 FROM public.datasets WHERE name = %s AND version = %s AND fingerprint = %s",
        (dataset, version, fingerprint),
    ).fetchone()
    if current:
        return "current"
    has_proofs = scalar(conn, "SELECT to_regclass('public.dataset_proofs')")
    if has_proofs:
        proof = conn.execute(
            "SELECT 1 FROM public.dataset_proofs "
            "WHERE dataset = %s AND version = %s AND fingerprint = %s",
            (dataset, version, fingerprint),
        ).fetchone()
        if proof:
            return "attested"
    return None


def record_checkpoint(
    conn: psycopg.Connection,
    *,
    path: str,
    model: str,
    run_id: str,
    status: str,
    problem: str | None = None,
    dataset: str | None = None,
    dataset_version: str | None = None,
    data_fingerprint: str | None = None,
    model_id: int | None = None,
    listing_digest: str | None = None,
) -> int:
    """Insert or update the `model_checkpoints` row of a run folder."""
    if status not in CHECKPOINT_STATUSES:
        raise ValueError(f"unknown checkpoint status {status!r}: {', '.join(CHECKPOINT_STATUSES)}")
    new_id = scalar(
        conn,
        """INSERT INTO public.model_checkpoints
               (path, model, run_id, status, problem, dataset, dataset_version, data_fingerprint,
                model_id, listing_digest)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (path) DO UPDATE SET
               status = EXCLUDED.status, problem = EXCLUDED.problem, dataset = EXCLUDED.dataset,
               dataset_version = EXCLUDED.dataset_version,
               data_fingerprint = EXCLUDED.data_fingerprint, model_id = EXCLUDED.model_id,
               listing_digest = EXCLUDED.listing_digest, checked_at = now()
           RETURNING id""",
        (
            path,
            model,
            run_id,
            status,
            problem,
            dataset,
            dataset_version,
            data_fingerprint,
            model_id,
            listing_digest,
        ),
    )
    return int(new_id)


def untraceable_checkpoints(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Checkpoint folders that cannot be traced to curated data, with the reason."""
    rows = conn.execute(
        """SELECT path, model, run_id, status, problem, dataset, dataset_version,
                  data_fingerprint, first_seen_at, checked_at
             FROM public.model_checkpoints WHERE status <> 'registered' ORDER BY path"""
    ).fetchall()
    keys = (
        "path",
        "model",
        "run_id",
        "status",
        "problem",
        "dataset",
        "dataset_version",
        "data_fingerprint",
        "first_seen_at",
        "checked_at",
    )
    return [dict(zip(keys, r, strict=True)) for r in rows]
