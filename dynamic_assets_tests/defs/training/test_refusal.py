"""A training run whose data changed after it was planned fails, naming what changed: the
MLflow run ends FAILED with the step, and nothing is checkpointed or registered."""

from __future__ import annotations

import mlflow

from dynamic_assets.defs.training.keys import train_job_name
from dynamic_assets_tests.support.runs import run_version
from dynamic_assets_tests.support.staging import curate_and_fingerprint

V1 = "2024-06-01"


def test_a_run_on_changed_data_fails_clearly(
    defs, instance, db, drive, drive_root, decls, mlflow_store
):
    fp = curate_and_fingerprint(db, drive, decls, "market", V1)
    instance.add_dynamic_partitions("market_versions", [V1])
    with db.connect() as conn:  # a value edited in place after fingerprinting
        conn.execute(
            "UPDATE ai_curated.market SET volume = volume + 1 WHERE dataset_version = %s "
            "AND symbol = (SELECT min(symbol) FROM ai_curated.market)",
            (V1,),
        )
    result = run_version(defs, instance, "market", V1, job=train_job_name("market_next_return"))
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    description = failure.step_failure_data.user_failure_data.description
    assert description.startswith(f"market_next_return {V1}: market {V1}: the curated data")
    assert f"no longer matches its registered fingerprint {fp}" in description
    assert "(row contents differ" in description
    client = mlflow.MlflowClient(mlflow_store.tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("market_next_return").experiment_id])
    assert run.info.status == "FAILED" and run.data.tags["data_fingerprint"] == fp
    assert not (drive_root / "model-checkpoints" / "market_next_return").exists()
    with db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM models").fetchone() == (0,)
