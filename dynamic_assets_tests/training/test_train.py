"""A training run on a curated demo version, without Dagster: trained on exactly the data it was
planned on, tracked in MLflow (read back with the MLflow client), checkpointed in the drive
(loaded back with skops to the same predictions) and registered in Postgres."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest
from psycopg.conninfo import conninfo_to_dict

from dynamic_assets.read.curated import FingerprintMismatch, read_curated
from dynamic_assets.training import checkpoint as ckpt
from dynamic_assets.training.identity import config_hash, git_commit, run_tags
from dynamic_assets.training.tracking import tracked_run
from dynamic_assets.training.train import train_version
from dynamic_assets_tests.support.staging import curate_version

V1 = "2024-06-01"


def train(db, drive, decls, tracking, name, version, fingerprint):
    model = decls.model(name)
    tags = run_tags(model, version, fingerprint, "dagster-run-1")
    with tracked_run(tracking, model.name, run_name=f"{name}-{version}", tags=tags) as run:
        return train_version(
            db,
            drive,
            model,
            decls.dataset("market"),
            version,
            fingerprint,
            run=run,
            dagster_run_id="dagster-run-1",
        )


def test_a_training_run_is_tracked_checkpointed_and_registered(
    db, drive, drive_root, decls, market, tracking
):
    fp = market[V1]
    out = train(db, drive, decls, tracking, "market_next_return", V1, fp)

    # MLflow: parameters, metrics, the dataset input (digest = fingerprint), tags, the model.
    client = mlflow.MlflowClient(tracking.tracking_uri)
    run = client.get_run(out.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["alpha"] == "10.0"
    assert run.data.params["dataset_version"] == V1
    assert run.data.params["data_fingerprint"] == fp
    assert int(run.data.params["test_rows"]) == len(out.fitted.split.X_test) > 50
    assert run.data.metrics == pytest.approx(out.metrics)
    assert set(run.data.metrics) >= {"test_rmse", "test_mae", "test_r2", "baseline_rmse"}
    (inp,) = run.inputs.dataset_inputs
    assert inp.dataset.digest == fp[:36]
    assert inp.dataset.name == f"market@{V1}"
    source = json.loads(inp.dataset.source)
    assert source["table"] == "ai_curated.market" and source["fingerprint"] == fp
    assert source["filter"] == f"dataset_version = '{V1}'"
    # Where the table lives, by name (database, host, port): no connection string at all.
    dbname = conninfo_to_dict(db.uri)["dbname"]
    assert source["database"].startswith(f"Postgres database {dbname} on ")
    assert "postgresql://" not in inp.dataset.source and "@" not in source["database"]
    assert json.loads(inp.dataset.profile)["num_rows"] == 560
    commit, _ = git_commit()
    tags = run.data.tags
    assert tags["git_commit"] == commit and tags["mlflow.source.git.commit"] == commit
    assert tags["dagster_run_id"] == "dagster-run-1"
    assert (tags["dataset"], tags["dataset_version"], tags["data_fingerprint"]) == (
        "market",
        V1,
        fp,
    )
    assert tags["checkpoint"] == f"local:{out.checkpoint}"
    stored = client.get_logged_model(out.mlflow_model_uri.removeprefix("models:/"))
    logged = mlflow.sklearn.load_model(stored.artifact_location)
    X_test = out.fitted.split.X_test
    np.testing.assert_allclose(logged.predict(X_test), out.fitted.predictions)

    # The checkpoint: skops weights that predict the same, valid metadata, the MLflow mirror.
    folder = f"model-checkpoints/market_next_return/{out.mlflow_run_id}"
    assert out.checkpoint == folder
    meta, estimator = ckpt.read_checkpoint(drive, folder)
    np.testing.assert_array_equal(estimator.predict(X_test), out.fitted.predictions)
    assert (meta.model, meta.run_id, meta.mlflow_run_id) == (
        "market_next_return",
        out.mlflow_run_id,
        out.mlflow_run_id,
    )
    assert (meta.dataset, meta.dataset_version, meta.data_fingerprint) == ("market", V1, fp)
    assert meta.framework == "scikit-learn" and meta.framework_version
    assert meta.hyperparameters == {"alpha": 10.0} and meta.metrics == out.metrics
    assert meta.git_commit == commit and meta.config_hash == config_hash(decls.model(out.model))
    files = {
        p.relative_to(drive_root / folder).as_posix()
        for p in (drive_root / folder).rglob("*")
        if p.is_file()
    }
    assert {
        "model.skops",
        "metadata.json",
        "mlflow/model/MLmodel",
        "mlflow/model/model.skops",
    } <= files
    record = json.loads((drive_root / folder / "mlflow/run/fingerprint_record.json").read_text())
    assert record["dataset"] == "market" and record["rows"]["count"] == 560
    assert (
        ckpt.parse_metadata(
            (drive_root / folder / "metadata.json").read_bytes(),
            files={rel: (drive_root / folder / rel).stat().st_size for rel in files},
        ).run_id
        == out.mlflow_run_id
    )

    # The registry: a models row and an experiments row.
    with db.connect() as conn:
        m = conn.execute(
            """SELECT m.name, m.version, d.name, d.version, m.framework, m.performance_metrics,
                      m.deployment_locations, m.metadata
                 FROM models m JOIN datasets d ON d.id = m.dataset_id"""
        ).fetchall()
        e = conn.execute(
            "SELECT name, dataset_version, model_version, parameters, results, git_commit "
            "FROM experiments"
        ).fetchall()
    ((name, version, ds, ds_version, framework, perf, where, details),) = m
    assert (name, version, ds, ds_version, framework) == (
        "market_next_return",
        out.mlflow_run_id,
        "market",
        V1,
        "scikit-learn",
    )
    assert perf == pytest.approx(out.metrics) and where["drive"] == folder
    assert details["data_fingerprint"] == fp and details["registered_by"] == "pipeline"
    ((ename, edv, emv, params, results, ecommit),) = e
    assert (ename, edv, emv, ecommit) == ("market_next_return", V1, out.mlflow_run_id, commit)
    assert params["hyperparameters"] == {"alpha": 10.0} and results == pytest.approx(out.metrics)


def test_a_failed_step_ends_the_mlflow_run_failed(decls, tracking):
    model = decls.model("market_next_return")
    with (
        pytest.raises(RuntimeError, match="disk full"),
        tracked_run(tracking, model.name, run_name="x", tags={}) as run,
    ):
        raise RuntimeError("disk full")
    assert (
        mlflow.MlflowClient(tracking.tracking_uri).get_run(run.info.run_id).info.status == "FAILED"
    )


def test_read_curated_refuses_data_that_is_not_the_expected_fingerprint(db, market):
    fp = market[V1]
    assert len(read_curated("market", V1, database=db, expected_fingerprint=fp)) == 560
    with pytest.raises(FingerprintMismatch, match=f"now has fingerprint {fp}, not {'0' * 64}"):
        read_curated("market", V1, database=db, expected_fingerprint="0" * 64)
    # One value changed after fingerprinting: the registry still says fp, the rows do not.
    with db.connect() as conn:
        conn.execute(
            "UPDATE ai_curated.market SET close = close + 0.01 "
            "WHERE dataset_version = %s AND symbol = (SELECT min(symbol) FROM ai_curated.market) "
            "AND date = (SELECT min(date) FROM ai_curated.market WHERE dataset_version = %s)",
            (V1, V1),
        )
    with pytest.raises(FingerprintMismatch, match="row contents differ"):
        read_curated("market", V1, database=db, expected_fingerprint=fp)


def test_a_version_without_a_fingerprint_is_not_read_as_expected(db, drive, decls):
    curate_version(db, drive, decls, "market", V1)
    assert len(read_curated("market", V1, database=db)) == 560
    with pytest.raises(FingerprintMismatch, match="has no fingerprint yet"):
        read_curated("market", V1, database=db, expected_fingerprint="a" * 64)


def test_training_on_changed_data_is_refused_and_leaves_nothing(
    db, drive, drive_root, decls, market, tracking
):
    with db.connect() as conn:
        conn.execute(
            "DELETE FROM ai_curated.market WHERE dataset_version = %s "
            "AND symbol = (SELECT min(symbol) FROM ai_curated.market)",
            (V1,),
        )
    with pytest.raises(FingerprintMismatch, match="row count, row contents differ"):
        train(db, drive, decls, tracking, "market_next_return", V1, market[V1])
    assert not (drive_root / "model-checkpoints" / "market_next_return").exists()
    with db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM models").fetchone() == (0,)
    runs = mlflow.MlflowClient(tracking.tracking_uri).search_runs(
        [
            mlflow.MlflowClient(tracking.tracking_uri)
            .get_experiment_by_name("market_next_return")
            .experiment_id
        ]
    )
    assert [r.info.status for r in runs] == ["FAILED"]
