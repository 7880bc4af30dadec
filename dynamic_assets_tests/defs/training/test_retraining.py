"""Training end to end on the demo drive through Dagster: the drive sensor's runs bring a version
to fingerprinted, the training automation requests the models on it, and the runs train, track
and checkpoint them; re-materializing a version whose data did not change requests nothing (and
a forced run trains nothing), a new version is requested for exactly that version, and a changed
value in a version's file retrains that version."""

from __future__ import annotations

import json
import shutil

import dagster as dg
import mlflow

from dynamic_assets.defs.datasets.assets import curated_key
from dynamic_assets.defs.provenance.keys import fingerprint_key
from dynamic_assets.defs.training.keys import model_key, train_job_name
from dynamic_assets.provenance.lineage import lineage
from dynamic_assets.training.checkpoint import read_checkpoint
from dynamic_assets_tests.support.drive_files import edit_cell, touch_later
from dynamic_assets_tests.support.runs import data_version, run_all, run_version, tick

V1, V2 = "2024-06-01", "2024-07-01"
RETURN, RANGE = "market_next_return", "market_next_range"
MODELS = [model_key(RETURN), model_key(RANGE)]


def only_market(result: dg.SensorResult) -> dg.SensorResult:
    return dg.SensorResult(
        run_requests=[r for r in result.run_requests if r.tags["dataset"] == "market"],
        dynamic_partitions_requests=result.dynamic_partitions_requests,
    )


def evaluate(defs, instance, cursor=None):
    return dg.evaluate_automation_conditions(
        defs=defs,
        instance=instance,
        asset_selection=dg.AssetSelection.assets(*MODELS),
        cursor=cursor,
    )


def requested(evaluation) -> set[tuple[str, str]]:
    return {
        (key.path[-1], partition)
        for key in MODELS
        for partition in evaluation.get_requested_partitions(key)
    }


def train(defs, instance, pairs) -> dict[tuple[str, str], dict]:
    """Run the training job of each (model, version); the materialization metadata of each
    ({} when the run materialized nothing)."""
    out = {}
    for model, version in sorted(pairs):
        result = run_version(defs, instance, "market", version, job=train_job_name(model))
        assert result.success, [
            e.step_failure_data.error.message for e in result.all_events if e.is_step_failure
        ]
        mats = [e for e in result.all_events if e.is_step_materialization]
        out[(model, version)] = (
            {
                **{
                    k: v.value
                    for k, v in mats[0].event_specific_data.materialization.metadata.items()
                },
                "materialized_at": instance.get_latest_materialization_event(
                    model_key(model)
                ).timestamp,
            }
            if mats
            else {}
        )
    return out


def mlflow_runs(tracking) -> list:
    client = mlflow.MlflowClient(tracking.tracking_uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids) if ids else []


def recurate(defs, instance, version):
    """Materialize the curated version and its fingerprint again; the fingerprint."""
    result = run_version(
        defs,
        instance,
        "market",
        version,
        selection=[curated_key("market"), fingerprint_key("market")],
    )
    assert result.success
    return data_version(instance, fingerprint_key("market"), version)


def test_models_train_on_new_data_and_only_on_new_data(
    defs, instance, db, drive, drive_root, mlflow_store
):
    held = drive_root.parent / "held-2024-07-01"
    shutil.move(drive_root / "datasets" / "market" / V2, held)

    # Files in the drive -> fingerprinted version -> training requested and run, nobody clicking.
    found = tick(defs, instance)
    assert all(r.success for r in run_all(defs, instance, only_market(found)).values())
    first = evaluate(defs, instance)
    assert requested(first) == {(RETURN, V1), (RANGE, V1)}
    trained = train(defs, instance, requested(first))
    assert all(meta["trained"] for meta in trained.values())
    ret = trained[(RETURN, V1)]
    assert ret["test_rmse"] > 0 and ret["train_rows"] > ret["test_rows"] > 50
    assert trained[(RANGE, V1)]["test_r2"] > 0  # the volatility forecast beats the mean
    runs = mlflow_runs(mlflow_store)
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    # The MLflow run ended with the Dagster step: after the asset was materialized.
    run = next(r for r in runs if r.info.run_id == ret["mlflow_run_id"])
    assert run.info.end_time / 1000 >= ret["materialized_at"]
    meta, _ = read_checkpoint(drive, ret["checkpoint"])
    fp1 = ret["data_fingerprint"]
    assert meta.data_fingerprint == fp1
    assert meta.mlflow_run_id == ret["mlflow_run_id"]
    assert sorted(m["name"] for m in lineage(db, "market", V1)["models"]) == [RANGE, RETURN]

    # Nothing changed: nothing requested.
    second = evaluate(defs, instance, first.cursor)
    assert second.total_requested == 0

    # The curated version materialized again, same data: same fingerprint, the models stay fresh.
    assert recurate(defs, instance, V1) == fp1
    third = evaluate(defs, instance, second.cursor)
    assert third.total_requested == 0
    # A run forced anyway (e.g. from the UI) finds the run on this exact data and trains nothing.
    forced = train(defs, instance, {(RETURN, V1)})[(RETURN, V1)]
    assert forced["trained"] is False and forced["mlflow_run_id"] == ret["mlflow_run_id"]
    assert len(mlflow_runs(mlflow_store)) == 2
    with db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM models").fetchone() == (2,)

    # A new version arrives in the drive: exactly that version is requested, for both models.
    shutil.move(held, drive_root / "datasets" / "market" / V2)
    again = tick(defs, instance, cursor=found.cursor)
    assert [(r.tags["dataset"], r.partition_key) for r in again.run_requests] == [("market", V2)]
    run_all(defs, instance, again)
    fourth = evaluate(defs, instance, third.cursor)
    assert requested(fourth) == {(RETURN, V2), (RANGE, V2)}
    trained = train(defs, instance, requested(fourth))
    assert all(meta["trained"] for meta in trained.values())
    assert len(mlflow_runs(mlflow_store)) == 4

    # A value changes in a file of 2024-06-01: its fingerprint changes and it is retrained
    # (market_next_range trains on the latest version only, so its run for 2024-06-01 skips).
    nyse = drive_root / "datasets" / "market" / V1 / "nyse.csv"
    edit_cell(nyse, 1, 7, lambda volume: str(int(volume) + 1))  # one share more
    touch_later(nyse)
    changed = tick(defs, instance, cursor=again.cursor)
    assert [r.partition_key for r in changed.run_requests] == [V1]
    run_all(defs, instance, changed)
    fifth = evaluate(defs, instance, fourth.cursor)
    assert requested(fifth) == {(RETURN, V1), (RANGE, V1)}
    trained = train(defs, instance, requested(fifth))
    # Not the latest version: recorded as skipped, nothing trained.
    skipped = trained[(RANGE, V1)]
    assert skipped["trained"] is False and skipped["skipped"].startswith("nothing to do")
    assert "mlflow_run_id" not in skipped
    new = trained[(RETURN, V1)]
    assert new["trained"] and new["data_fingerprint"] != fp1
    assert len(mlflow_runs(mlflow_store)) == 5
    assert evaluate(defs, instance, fifth.cursor).total_requested == 0
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT metadata->>'dataset_version', metadata->>'data_fingerprint' FROM models "
            "WHERE name = %s ORDER BY id",
            (RETURN,),
        ).fetchall()
    assert [v for v, _ in rows] == [V1, V2, V1] and rows[2][1] == new["data_fingerprint"]
    summary = json.loads(
        (drive_root / new["checkpoint"] / "mlflow" / "run" / "training_summary.json").read_text()
    )
    assert summary["rows"]["curated"] == 560
