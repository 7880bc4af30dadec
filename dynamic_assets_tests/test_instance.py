"""The production deploy/dagster.yaml gives an instance whose storage is Postgres (here the embedded
one), and a real job runs against it: runs, events and partitions land in Postgres tables."""

import shutil
from pathlib import Path

import dagster as dg
import psycopg

REPO = Path(__file__).resolve().parents[1]


def test_job_runs_on_an_instance_stored_in_embedded_postgres(
    pg_server, defs, monkeypatch, db, tmp_path
):
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS dagster_storage")
        conn.execute("CREATE DATABASE dagster_storage")
    storage_url = pg_server.get_uri("dagster_storage")
    # dagster-postgres speaks psycopg2; SQLAlchemy 2.1 picks psycopg 3 for a bare postgresql://.
    monkeypatch.setenv(
        "DAGSTER_PG_URL", storage_url.replace("postgresql://", "postgresql+psycopg2://", 1)
    )

    home = tmp_path / "dagster_home"  # DAGSTER_HOME holding deploy/dagster.yaml
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        instance.add_dynamic_partitions("market_versions", ["2024-06-01"])
        result = defs.get_job_def("ingest_market").execute_in_process(
            partition_key="2024-06-01", instance=instance
        )
        assert result.success
        run_id = result.run_id
    finally:
        instance.dispose()

    with psycopg.connect(storage_url) as conn:
        status = conn.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,)).fetchone()
        materialized = conn.execute(
            "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
            (run_id,),
        ).fetchone()[0]
        partitions = conn.execute(
            "SELECT partition FROM dynamic_partitions WHERE partitions_def_name = 'market_versions'"
        ).fetchall()
    assert status == ("SUCCESS",)
    assert materialized == len(defs.get_job_def("ingest_market").asset_layer.selected_asset_keys)
    assert partitions == [("2024-06-01",)]
    with db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM ai_curated.market").fetchone()[0] == 560
