"""The pipeline run in this process, without a daemon (`dynamic-assets run`).

For each pending (dataset, version) it executes the same ingest job the drive sensor requests
(job name, partition and tags from `defs.datasets`: manifest and staging), then, when it
succeeded, the curate job the curate sensor follows it with (curated and provenance), then the
training job of each (model, version) that has no run for its current data and configuration,
on the home's Dagster instance, so that the UI shows these runs beside the sensor's. What is pending is decided by the core
(`datasets.pipeline.outstanding`, `training.records.pending_training`), as for the sensor and the
reconcile schedule. Each run gives back a plain outcome record for the command line to print.

Then every version an earlier run left short of its final state (`quality.states`) is driven
forward (`plan_forward`, `advance_version`): a curated version without fingerprint through its
ingest and curate jobs again, a fingerprinted one not attested (or not anchored, with TON
anchoring) through its attestation asset only.

A run that fails is alerted as the sensors alert it (`defs.alerts.sensors.alert_run_failure`):
the same signed events, delivered and recorded through `webhook_deliveries`, so that a failure
reaches the webhooks whether `dynamic-assets run` or a sensor found it, and only once.

The package, by seam: `plan` (what to run, plain code), `execute` (running the jobs),
`outcomes` (the outcome records and what a finished run says), `instance` (the home's Dagster
instance and the run log file). The names the command line and the tests use are re-exported
here.
"""

from dynamic_assets.defs.headless.execute import (
    HOLDER,
    TRIGGER,
    advance_version,
    ingest_version,
    train,
    train_version,
)
from dynamic_assets.defs.headless.instance import (
    HOME_INSTANCE_YAML,
    LOGGING,
    dagster_instance,
    home_instance_folder,
    home_instance_yaml,
    run_log_path,
)
from dynamic_assets.defs.headless.outcomes import Ingested, Trained
from dynamic_assets.defs.headless.plan import (
    DRIVEN,
    IngestPlan,
    plan_forward,
    plan_ingest,
    settings_database,
    settings_drive,
)

__all__ = [
    "DRIVEN",
    "HOLDER",
    "HOME_INSTANCE_YAML",
    "LOGGING",
    "TRIGGER",
    "IngestPlan",
    "Ingested",
    "Trained",
    "advance_version",
    "dagster_instance",
    "home_instance_folder",
    "home_instance_yaml",
    "ingest_version",
    "plan_forward",
    "plan_ingest",
    "run_log_path",
    "settings_database",
    "settings_drive",
    "train",
    "train_version",
]
