"""Dagster evaluated in process, as the daemon would do it: a sensor ticked on a context built
for it, the runs a tick requested, one partition of a job, and what the runs recorded."""

from __future__ import annotations

import dagster as dg


def sensor_context(
    defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None = None, resources=None
) -> dg.SensorEvaluationContext:
    """A sensor context on `instance` with the code location's resources (or `resources`)."""
    return dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=resources or defs.resources
    )


def tick(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    cursor: str | None = None,
    *,
    sensor: str = "drive_sensor",
    resources=None,
):
    """One evaluation of the named sensor (the drive sensor by default) from `cursor`, its
    resources open for the evaluation (the drive resource holds the database resource)."""
    with sensor_context(defs, instance, cursor, resources) as context:
        return defs.get_sensor_def(sensor)(context)


def run_all(
    defs: dg.Definitions, instance: dg.DagsterInstance, result: dg.SensorResult
) -> dict[tuple[str, str], dg.ExecuteInProcessResult]:
    """The partitions a tick added, then every run it requested (its asset selection), each to
    its end, and the run the curate sensor requests when a staging run succeeded, as the daemon
    runs them; the last result of each (dataset, version)."""
    for req in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    outcomes = {}
    for req in result.run_requests:
        done = run_request(defs, instance, req)
        follow = curate_follow_up(defs, instance, done)
        outcomes[(req.tags["dataset"], req.partition_key)] = (
            run_request(defs, instance, follow) if follow is not None else done
        )
    return outcomes


def run_request(
    defs: dg.Definitions, instance: dg.DagsterInstance, req: dg.RunRequest
) -> dg.ExecuteInProcessResult:
    return defs.get_job_def(req.job_name).execute_in_process(
        partition_key=req.partition_key,
        instance=instance,
        raise_on_error=False,
        tags=req.tags,
        asset_selection=list(req.asset_selection) if req.asset_selection else None,
    )


def curate_follow_up(
    defs: dg.Definitions, instance: dg.DagsterInstance, done: dg.ExecuteInProcessResult
) -> dg.RunRequest | None:
    """The run the curate sensor requests for the run of `done` (None when it requests none)."""
    if not done.success:
        return None
    run = instance.get_run_by_id(done.run_id)
    [success] = instance.get_records_for_run(
        done.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS
    ).records
    context = dg.build_run_status_sensor_context(
        sensor_name="curate_sensor",
        dagster_event=success.event_log_entry.dagster_event,
        dagster_instance=instance,
        dagster_run=run,
    )
    answer = defs.get_sensor_def("curate_sensor")(context)
    return answer if isinstance(answer, dg.RunRequest) else None


def run_version(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    dataset: str,
    version: str,
    *,
    job: str | None = None,
    selection=None,
    tags: dict[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    """One version of a dataset run by `job`, its partition added first if new; failures are in
    the result, not raised. Without `job`, the version's ingest job, then the curate job the
    curate sensor requests when it succeeded, as the daemon runs them; with `selection` too,
    the selected assets of the ingest job, then those of the curate job when the first part
    succeeded. The last run's result."""
    instance.add_dynamic_partitions(f"{dataset}_versions", [version])

    def execute(name: str, keys) -> dg.ExecuteInProcessResult:
        return defs.get_job_def(name).execute_in_process(
            partition_key=version,
            instance=instance,
            asset_selection=keys,
            raise_on_error=False,
            tags=tags,
        )

    if job is not None:
        return execute(job, selection)
    if selection is None:
        done = execute(f"ingest_{dataset}", None)
        follow = curate_follow_up(defs, instance, done)
        return run_request(defs, instance, follow) if follow is not None else done
    parts = [
        (name, [k for k in selection if k in _selected(defs, name)])
        for name in (f"ingest_{dataset}", f"curate_{dataset}")
    ]
    result = None
    for name, keys in parts:
        if keys and (result is None or result.success):
            result = execute(name, keys)
    assert result is not None, f"{selection} names no asset of {dataset}'s jobs"
    return result


def _selected(defs: dg.Definitions, job: str) -> set[dg.AssetKey]:
    return set(defs.get_job_def(job).asset_layer.selected_asset_keys)


def latest_metadata(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str) -> dict:
    """The metadata of the partition's latest materialization (which must exist)."""
    record = instance.get_latest_data_version_record(key, partition_key=partition)
    assert record is not None, f"{key.to_user_string()} {partition} was never materialized"
    return record.asset_materialization.metadata


def data_version(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str) -> str:
    """The data version the partition's latest materialization recorded."""
    record = instance.get_latest_data_version_record(key, partition_key=partition)
    return record.asset_materialization.tags["dagster/data_version"]
