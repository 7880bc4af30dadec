"""Training from the command line (`dynamic-assets run`): after the ingest runs, train every
declared model on each curated, fingerprinted version it has no run for yet with its current
fingerprint and configuration (new versions, changed data, a newly declared model), through the
same training asset the UI and the automation sensor use."""

from __future__ import annotations

import time
from dataclasses import dataclass

import dagster as dg

from dynamic_assets.db import Database
from dynamic_assets.declarations.model import Declarations, Model
from dynamic_assets.declarations.names import version_sort_key
from dynamic_assets.defs.datasets.partitions import partitions_name
from dynamic_assets.defs.training.keys import train_job_name
from dynamic_assets.training import records
from dynamic_assets.training.train import config_hash


@dataclass
class Pending:
    model: Model
    version: str
    fingerprint: str


@dataclass
class Trained:
    model: str
    version: str
    status: str  # trained | up to date | skipped | failed
    metric: str = ""
    value: float | None = None
    seconds: float = 0.0
    detail: str = ""


def pending_training(
    db: Database, decls: Declarations, dataset: str | None = None
) -> list[Pending]:
    """(model, version) pairs whose current fingerprint has no run with the model's current
    configuration; `versions: latest` models only consider their dataset's newest version."""
    found: list[Pending] = []
    with db.connect() as conn:
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
            chash = config_hash(model)
            for version, fp in versions:
                if records.find_trained(conn, model.name, fp, chash) is None:
                    found.append(Pending(model, version, fp))
    return found


def train_pending(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    db: Database,
    decls: Declarations,
    *,
    dataset: str | None = None,
) -> list[Trained]:
    """Run the training job of each pending (model, version); one outcome per run."""
    outcomes: list[Trained] = []
    for p in pending_training(db, decls, dataset):
        name = partitions_name(p.model.dataset)
        if not instance.has_dynamic_partition(name, p.version):
            instance.add_dynamic_partitions(name, [p.version])
        started = time.perf_counter()
        result = defs.get_job_def(train_job_name(p.model.name)).execute_in_process(
            partition_key=p.version,
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
            tags={"model": p.model.name, "version": p.version, "trigger": "cli"},
        )
        headline = f"test_{p.model.metric}"
        outcome = Trained(p.model.name, p.version, "failed", headline)
        outcome.seconds = time.perf_counter() - started
        if result.success:
            mats = [
                e.event_specific_data.materialization
                for e in result.all_events
                if e.is_step_materialization
            ]
            meta = mats[-1].metadata if mats else {}
            trained = meta.get("trained")
            if not mats:
                outcome.status = "skipped"
            else:
                outcome.status = "trained" if trained and trained.value else "up to date"
            value = meta.get(headline)
            outcome.value = float(value.value) if value is not None else None
            run = meta.get("mlflow_run_id")
            outcome.detail = f"MLflow run {run.value}" if run is not None else ""
        else:
            errors = [
                e.step_failure_data.error.message.strip()
                for e in result.all_events
                if e.is_step_failure and e.step_failure_data.error
            ]
            outcome.detail = "; ".join(errors)[:1000] or "the training run failed"
        outcomes.append(outcome)
    return outcomes
