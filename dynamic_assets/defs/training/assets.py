"""One training asset per declared model, partitioned like its dataset:

models/<model>   fits the model on one curated version (read with the fingerprint it was
                 planned on), tracks the run in MLflow, writes the checkpoint to
                 model-checkpoints/<model>/<run-id>/ and registers it in `models` and
                 `experiments`

It depends on provenance/<dataset>/fingerprint, whose data version is the version's fingerprint,
and its automation condition requests a version when it is new or when its fingerprint changed:
re-materializing a version whose data did not change leaves the model fresh. Inside, a guard skips
training when `models` already holds a run on this exact fingerprint with this exact model
configuration (e.g. a run made by `dynamic-assets run` in another Dagster instance); a version
with nothing to do (not the latest, for a model trained on the latest only) is materialized with
`trained: false` and the reason in `skipped`, so that no view counts it as failed.
"""

import dagster as dg

from dynamic_assets.datasets.pointers import current_version
from dynamic_assets.datasets.registry import curated_versions
from dynamic_assets.declarations.model import Dataset, Declarations, Model
from dynamic_assets.declarations.names import version_sort_key
from dynamic_assets.defs.datasets.asset_args import dagster_owners
from dynamic_assets.defs.datasets.metadata import md_table
from dynamic_assets.defs.datasets.partitions import versions_partitions
from dynamic_assets.defs.provenance.keys import fingerprint_key
from dynamic_assets.defs.provenance.resources import AttestationResource
from dynamic_assets.defs.resources import DriveResource, PostgresResource
from dynamic_assets.defs.training.keys import model_key, train_job_name
from dynamic_assets.defs.training.resources import MlflowResource
from dynamic_assets.drive.base import Drive
from dynamic_assets.mirrors.models import mirror_to_platforms, s3_platform_names
from dynamic_assets.read.curated import FingerprintMismatch
from dynamic_assets.settings import Settings
from dynamic_assets.training import records
from dynamic_assets.training.checkpoint import WEIGHTS_FILE, CheckpointError
from dynamic_assets.training.identity import config_hash, run_tags
from dynamic_assets.training.tracking import tracked_run

AC = dg.AutomationCondition
# What a model's description says of the versions it is trained on, by `versions`.
TRAINED_ON = {
    "every": "every version",
    "latest": "the latest version",
    "current": "the current version (dynamic-assets promote)",
}


def retrain_condition() -> dg.AutomationCondition:
    """Request a version when it is missing (new, or the model is newly declared) or when its
    fingerprint (the dependency's data version) changed; never while the fingerprint is missing
    or in progress, or a run of it is in progress.

    Unlike `since_last_handled()`, the first evaluation does not count as handled: a model
    declared after its data arrived trains on the versions already fingerprinted. A failed or
    skipped run is not retried by itself (the trigger is the change, not the state).
    """
    handled = (AC.newly_requested() | AC.newly_updated()).with_label("requested or updated")
    changed = AC.newly_missing() | AC.any_deps_match(AC.data_version_changed())
    return (
        changed.since(handled)
        & ~AC.any_deps_missing()
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
    ).with_label("new version or changed data")


def planned_fingerprint(
    context: dg.AssetExecutionContext, dataset: str, version: str, postgres: PostgresResource
) -> str:
    """The fingerprint this run is planned on: the data version of the fingerprint partition as
    this Dagster instance last recorded it, else the registry's."""
    record = context.instance.get_latest_data_version_record(
        fingerprint_key(dataset), partition_key=version
    )
    if record is not None and record.asset_materialization is not None:
        value = record.asset_materialization.tags.get("dagster/data_version")
        if value:
            return value
    with postgres.database().connect() as conn:
        value = records.registered_fingerprint(conn, dataset, version)
    if not value:
        raise dg.Failure(
            description=f"{dataset} {version} has no fingerprint: materialize "
            f"provenance/{dataset}/fingerprint first"
        )
    return value


def _mlflow_link(mlflow: MlflowResource, experiment_id: str, run_id: str) -> dg.MetadataValue:
    uri = mlflow.tracking().tracking_uri
    if uri.startswith(("http://", "https://")) and "@" not in uri:
        return dg.MetadataValue.url(
            f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
        )
    if uri.startswith("sqlite:///"):
        return dg.MetadataValue.text(f"mlflow ui --backend-store-uri {uri}")
    return dg.MetadataValue.text(mlflow.describe())


def mirror_checkpoint(
    context: dg.AssetExecutionContext,
    decls: Declarations,
    postgres: PostgresResource,
    drive: Drive,
    attestation: AttestationResource,
    model: str,
    run_id: str,
    folder: str,
) -> dict[str, dg.MetadataValue]:
    """Put the run's weights on every declared S3 platform (`mirrors.models`); the metadata
    entries saying where, and which platforms failed and why. A failure is logged, never raised:
    the model is trained and the other platforms get their copy."""
    if not s3_platform_names(decls):
        return {}
    done, failures = mirror_to_platforms(
        postgres.database(),
        decls,
        model,
        run_id,
        lambda: drive.open(f"{folder}/{WEIGHTS_FILE}"),
        file_name=WEIGHTS_FILE,
        signer=attestation.signer(),
    )
    for failure in failures:
        context.log.warning(failure)
    meta: dict[str, dg.MetadataValue] = {
        "mirrors": dg.MetadataValue.json({d.platform: d.placed.url for d in done})
    }
    if failures:
        meta["mirror_failures"] = dg.MetadataValue.json(failures)
    return meta


def build_training_asset(model: Model, ds: Dataset, decls: Declarations) -> dg.AssetsDefinition:
    """The training asset of one declared model; its checkpoint is mirrored to the declared S3
    platforms of `decls`."""
    chash = config_hash(model)
    features = md_table(["feature"], [(f,) for f in model.features])

    @dg.asset(
        key=model_key(model.name),
        deps=[fingerprint_key(ds.name)],
        partitions_def=versions_partitions(ds.name),
        group_name=ds.name,
        owners=dagster_owners(model.owners or ds.owners),
        kinds={"scikitlearn", "mlflow"},
        code_version=chash[:16],
        automation_condition=retrain_condition(),
        output_required=False,
        tags={"model": model.name},
        description=(model.description or f"Model {model.name} trained on {ds.name}.")
        + f"\n\n`{model.estimator}` on `{ds.name}` ({TRAINED_ON[model.versions]})"
        + f", target `{model.target}`, {model.split} split holding out "
        f"{model.test_size:.0%}, headline metric `test_{model.metric}`. Tracked in MLflow "
        f"(experiment `{model.name}`), checkpoints in `model-checkpoints/{model.name}/<run-id>/`"
        " and under `models/<model>/<run-id>/` on each declared S3 platform."
        f"\n\n{features}",
    )
    def train(
        context: dg.AssetExecutionContext,
        postgres: PostgresResource,
        drive: DriveResource,
        mlflow: MlflowResource,
        attestation: AttestationResource,
    ):
        version = context.partition_key
        db = postgres.database()
        if model.versions in ("latest", "current"):
            with db.connect() as conn:
                if model.versions == "current":
                    latest = current_version(conn, ds.name)
                else:
                    versions = curated_versions(conn, ds.name)
                    latest = max(versions, key=version_sort_key) if versions else None
            if version != latest:
                # Recorded as done, not left unmaterialized: a backfill counts a partition it
                # targeted and no run materialized as failed.
                reason = (
                    f"nothing to do: {model.name} trains on the {model.versions} {ds.name} "
                    f"version only ({latest})"
                )
                context.log.info(f"{model.name} {version}: {reason}")
                yield dg.MaterializeResult(
                    metadata={"trained": False, "skipped": reason, "latest_version": latest or ""}
                )
                return
        fingerprint = planned_fingerprint(context, ds.name, version, postgres)
        lock_key = f"dynamic_assets.train|{model.name}|{fingerprint}|{chash}"
        with db.connect(autocommit=True) as lock:
            # One training run per (model, data, configuration), across processes and machines.
            lock.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (lock_key,))
            with db.connect() as conn:
                existing = records.find_trained(conn, model.name, fingerprint, chash)
            if existing is not None:
                missing = set(s3_platform_names(decls)) - set(existing.deployment_locations)
                mirrored = (  # a mirror an earlier run could not make
                    mirror_checkpoint(
                        context,
                        decls,
                        postgres,
                        drive.get(),
                        attestation,
                        model.name,
                        existing.version,
                        existing.deployment_locations.get("drive", ""),
                    )
                    if missing
                    else {}
                )
                context.log.info(
                    f"{model.name} {version}: already trained on fingerprint {fingerprint[:16]}… "
                    f"with this configuration (MLflow run {existing.version}); not retraining"
                )
                yield dg.MaterializeResult(
                    metadata={
                        "trained": False,
                        "reason": "a run on this exact data and configuration exists",
                        "mlflow_run_id": existing.version,
                        "checkpoint": existing.deployment_locations.get("drive", ""),
                        "data_fingerprint": fingerprint,
                        "config_hash": chash,
                        **{k: float(v) for k, v in existing.performance_metrics.items()},
                        **mirrored,
                    },
                    data_version=dg.DataVersion(existing.version),
                )
                return
            # pandas and the estimators load with the first model trained, not with the
            # definitions (a run that only ingests never holds them)
            from dynamic_assets.training.features import TrainingDataError
            from dynamic_assets.training.fit import TrainingError
            from dynamic_assets.training.train import train_version

            tags = run_tags(model, version, fingerprint, context.run.run_id)
            with tracked_run(
                mlflow.tracking(), model.name, run_name=f"{model.name}-{version}", tags=tags
            ) as run:
                try:
                    outcome = train_version(
                        db,
                        drive.get(),
                        model,
                        ds,
                        version,
                        fingerprint,
                        run=run,
                        dagster_run_id=context.run.run_id,
                    )
                except (
                    FingerprintMismatch,
                    TrainingError,
                    TrainingDataError,
                    CheckpointError,
                ) as exc:  # the MLflow run ends FAILED with the step
                    raise dg.Failure(
                        description=f"{model.name} {version}: {exc}",
                        metadata={
                            "data_fingerprint": fingerprint,
                            "mlflow_run_id": run.info.run_id,
                        },
                    ) from exc
                split = outcome.fitted.split
                mirrored = mirror_checkpoint(
                    context,
                    decls,
                    postgres,
                    drive.get(),
                    attestation,
                    model.name,
                    outcome.mlflow_run_id,
                    outcome.checkpoint,
                )
                headline = f"test_{model.metric}"
                context.log.info(
                    f"{model.name} {version}: {headline} = {outcome.metrics[headline]:.6g} "
                    f"({len(split.X_train)} train / {len(split.X_test)} held-out rows), "
                    f"MLflow run {outcome.mlflow_run_id}, checkpoint {outcome.checkpoint}"
                )
                # Yielded inside the MLflow run: it ends when the step does.
                yield dg.MaterializeResult(
                    metadata={
                        "trained": True,
                        headline: outcome.metrics[headline],
                        **{k: v for k, v in outcome.metrics.items() if k != headline},
                        "dagster/row_count": len(outcome.fitted.frame.X),
                        "train_rows": len(split.X_train),
                        "test_rows": len(split.X_test),
                        "split": split.description,
                        "mlflow_run_id": outcome.mlflow_run_id,
                        "mlflow_experiment_id": outcome.mlflow_experiment_id,
                        "mlflow_model_uri": outcome.mlflow_model_uri,
                        "mlflow": _mlflow_link(
                            mlflow, outcome.mlflow_experiment_id, outcome.mlflow_run_id
                        ),
                        "checkpoint": outcome.checkpoint,
                        "weights_bytes": outcome.weights_bytes,
                        "data_fingerprint": fingerprint,
                        "config_hash": chash,
                        "git_commit": tags["git_commit"],
                        "seconds": round(outcome.seconds, 3),
                        "metrics": dg.MetadataValue.md(
                            md_table(
                                ["metric", "value"],
                                [(k, f"{v:.6g}") for k, v in outcome.metrics.items()],
                            )
                        ),
                        **mirrored,
                    },
                    data_version=dg.DataVersion(outcome.mlflow_run_id),
                )

    return train


def build_train_job(model: Model, ds: Dataset):
    return dg.define_asset_job(
        train_job_name(model.name),
        selection=dg.AssetSelection.assets(model_key(model.name)),
        partitions_def=versions_partitions(ds.name),
        description=f"Train {model.name} on one version of {ds.name}.",
        tags={"model": model.name, "dataset": ds.name},
    )


def training_assets(decls: Declarations) -> list[dg.AssetsDefinition]:
    return [build_training_asset(m, decls.dataset(m.dataset), decls) for m in decls.models]


def training_defs(decls: Declarations, settings: Settings | None = None) -> dg.Definitions:
    """Training assets and jobs for every declared model, the checkpoint sensor and the
    automation sensor that retrains on new data. (The MLflow resource is chosen with the other
    resources, in `dynamic_assets.defs.resources.build_resources`.)"""
    from dynamic_assets.defs.training.sensors import (
        build_checkpoint_sensor,
        build_training_automation_sensor,
    )

    assets = training_assets(decls)
    jobs = [build_train_job(m, decls.dataset(m.dataset)) for m in decls.models]
    sensors = [build_checkpoint_sensor(decls)]
    if assets:
        sensors.append(build_training_automation_sensor([a.key for a in assets]))
    return dg.Definitions(assets=assets, jobs=jobs, sensors=sensors)
