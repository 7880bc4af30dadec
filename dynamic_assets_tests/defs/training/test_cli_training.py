"""`dynamic-assets run` trains too: after bringing versions to curated it trains each declared
model on the fingerprinted versions it has no run for, and a second run trains nothing."""

from __future__ import annotations

import mlflow
from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets.declarations.model import DEMO_CONFIG
from dynamic_assets.demo.seed import SEED_VERSIONS
from dynamic_assets_tests.support.staging import curate_and_fingerprint


def test_run_trains_what_has_no_run_yet_then_nothing(
    db, drive, drive_root, decls, settings, db_url, mlflow_store
):
    for version in SEED_VERSIONS["market"]:  # curated and fingerprinted earlier, never trained
        curate_and_fingerprint(db, drive, decls, "market", version)
    env = {
        "DYNAMIC_ASSETS_HOME": str(settings.home),
        "DYNAMIC_ASSETS_DRIVE": str(drive_root),
        "DYNAMIC_ASSETS_CONFIG": str(DEMO_CONFIG),
        "SUPABASE_DB_URL": db_url,
        "DAGSTER_HOME": "",
    }
    first = CliRunner().invoke(main, ["run", "--dataset", "market"], env=env)
    assert first.exit_code == 0, first.output
    rows = [cells(ln) for ln in first.output.splitlines() if "market_next_" in ln]
    trained = {(r[0], r[1]) for r in rows if r[5] == "trained"}
    assert all(r[2] in ("test_rmse", "test_r2") and float(r[3]) for r in rows)
    assert trained == {
        ("market_next_return", "2024-06-01"),
        ("market_next_return", "2024-07-01"),
        ("market_next_range", "2024-07-01"),  # versions: latest
    }
    client = mlflow.MlflowClient(mlflow_store.tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    assert len(client.search_runs(experiments)) == 3

    again = CliRunner().invoke(main, ["run", "--dataset", "market"], env=env)
    assert again.exit_code == 0, again.output
    assert "Nothing new" in again.output and "market_next_" not in again.output
    assert len(client.search_runs(experiments)) == 3
    skipped = CliRunner().invoke(main, ["run", "--no-train"], env=env)
    assert skipped.exit_code == 0 and "market_next_" not in skipped.output


def cells(line: str) -> list[str]:
    """The cells of a row of a rich table (model, version, metric, value, seconds, status, ...)."""
    return [c.strip() for c in line.split("│") if c.strip()]
