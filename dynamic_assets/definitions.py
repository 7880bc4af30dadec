"""The code location: one `Definitions`, merged from per-domain builders.

Reading the declarations file is the only thing done at import: no connection is opened, no
file written.
"""

from __future__ import annotations

import dagster as dg

from dynamic_assets.declarations.model import Declarations, load_declarations
from dynamic_assets.defs.alerts.sensors import alerts_defs
from dynamic_assets.defs.datasets.assets import (
    build_curate_job,
    build_dataset_assets,
    build_ingest_job,
)
from dynamic_assets.defs.datasets.sensors import (
    build_attest_schedule,
    build_curate_sensor,
    build_drive_sensor,
    build_reconcile_schedule,
)
from dynamic_assets.defs.lifecycle.assets import lifecycle_defs
from dynamic_assets.defs.mirrors.assets import mirrors_defs
from dynamic_assets.defs.provenance.assets import provenance_defs
from dynamic_assets.defs.reports.assets import reports_defs
from dynamic_assets.defs.resources import build_resources
from dynamic_assets.defs.training.assets import training_defs
from dynamic_assets.settings import Settings


def datasets_defs(decls: Declarations) -> dg.Definitions:
    assets = []
    ingest, curate = [], []
    for ds in decls.datasets:
        assets.extend(build_dataset_assets(ds, decls))
        ingest.append(build_ingest_job(ds))
        curate.append(build_curate_job(ds))
    schedules = []
    for ds, ingest_job, curate_job in zip(decls.datasets, ingest, curate, strict=True):
        schedules.append(build_reconcile_schedule(ds.name, decls, ingest_job))
        schedules.append(build_attest_schedule(ds.name, decls, curate_job))
    jobs = ingest + curate
    sensors = [build_drive_sensor(decls, jobs), build_curate_sensor(ingest, curate)] if jobs else []
    return dg.Definitions(assets=assets, jobs=jobs, sensors=sensors, schedules=schedules)


def build_defs(
    settings: Settings | None = None, decls: Declarations | None = None
) -> dg.Definitions:
    settings = settings or Settings.from_env()
    decls = decls or load_declarations(settings.config_path)
    return dg.Definitions.merge(
        datasets_defs(decls),
        provenance_defs(decls, settings),
        training_defs(decls, settings),
        alerts_defs(decls, settings),
        reports_defs(decls, settings),
        mirrors_defs(decls),
        lifecycle_defs(decls),
        dg.Definitions(resources=build_resources(settings)),
    )


defs = build_defs()
