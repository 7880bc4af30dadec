"""A curated version always has its fingerprint: the typed table is built and checked by the
staging step, fingerprinted before the swap, and the swap, the registry rows and the fingerprint
commit in one transaction. A process killed at any point, or a failure after the swap, leaves
the previous content or the new content with its fingerprint, never curated rows without one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest

from dynamic_assets.declarations.model import DEMO_CONFIG, load_declarations
from dynamic_assets.defs.datasets.assets import curated_key, raw_key
from dynamic_assets.provenance.fingerprint import compute_fingerprint
from dynamic_assets_tests.support.runs import run_version

REPO = Path(__file__).resolve().parents[3]
VERSION = "2024-06-01"

# The child runs the market ingest job in process, as `dynamic-assets run` does, with one
# function replaced by one that says where it is and then waits to be killed.
CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import dagster as dg
    from dynamic_assets.declarations.model import DEMO_CONFIG, load_declarations
    from dynamic_assets.definitions import build_defs
    from dynamic_assets.settings import Settings
    import dynamic_assets.defs.datasets.assets as dataset_assets
    import dynamic_assets.provenance.fingerprint as fingerprint

    home, drive, marker, point = sys.argv[1:5]

    def paused(*args, **kwargs):
        Path(marker).write_text(point)
        time.sleep(600)

    if point == "content_digest":
        fingerprint.content_digest = paused
    else:
        setattr(dataset_assets, point, paused)
    settings = Settings(home=Path(home), drive_root=Path(drive), config_path=DEMO_CONFIG,
                        db_url_set=True)
    defs = build_defs(settings, load_declarations(DEMO_CONFIG))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("market_versions", ["2024-06-01"])
        for job in ("ingest_market", "curate_market"):
            defs.get_job_def(job).execute_in_process(
                partition_key="2024-06-01", instance=instance, raise_on_error=False)
    """
)


def _registered(db) -> tuple | None:
    with db.connect() as conn:
        return conn.execute(
            "SELECT status, fingerprint, row_count FROM datasets WHERE name = 'market' "
            "AND version = %s",
            (VERSION,),
        ).fetchone()


def _curated_rows(db) -> int:
    with db.connect() as conn:
        if conn.execute("SELECT to_regclass('ai_curated.market')").fetchone()[0] is None:
            return 0
        return conn.execute(
            "SELECT count(*) FROM ai_curated.market WHERE dataset_version = %s", (VERSION,)
        ).fetchone()[0]


@pytest.mark.parametrize("point", ["content_digest", "_preview"])
def test_a_run_killed_around_the_swap_never_leaves_a_curated_version_without_fingerprint(
    point, tmp_path, drive_root, db_url, db
):
    marker = tmp_path / "reached"
    environ = dict(os.environ, SUPABASE_DB_URL=db_url)
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), environ.get("PYTHONPATH")]))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "home"), str(drive_root), str(marker), point],
        env=environ,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            if child.poll() is not None:
                raise AssertionError(child.stderr.read().decode()[-3000:])
            assert time.monotonic() < deadline, "the run never reached " + point
            time.sleep(0.2)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    registered = _registered(db)
    rows = _curated_rows(db)
    if registered is None or registered[0] != "curated":
        assert rows == 0  # invisible: the previous content (none) stays
    else:
        status, fingerprint, row_count = registered
        assert fingerprint is not None, f"curated {row_count} rows with fingerprint NULL"
        assert rows == row_count == 560
        with db.connect() as conn:
            ds = load_declarations(DEMO_CONFIG).dataset("market")
            assert compute_fingerprint(conn, ds, VERSION).fingerprint == fingerprint


def test_a_failure_after_the_swap_leaves_the_version_curated_with_its_fingerprint(
    defs, instance, db, monkeypatch
):
    import dynamic_assets.defs.datasets.assets as dataset_assets

    def unrenderable(*args, **kwargs):
        raise ValueError("year 10000 is out of range")

    monkeypatch.setattr(dataset_assets, "_preview", unrenderable)
    result = run_version(defs, instance, "market", VERSION)
    assert not result.success
    status, fingerprint, row_count = _registered(db)
    assert status == "curated" and row_count == 560 == _curated_rows(db)
    assert fingerprint is not None
    with db.connect() as conn:
        market = load_declarations(DEMO_CONFIG).dataset("market")
        assert compute_fingerprint(conn, market, VERSION).fingerprint == fingerprint


def test_failing_blocking_checks_fail_the_staging_partition_with_their_evaluations(
    settings, instance, db
):
    from dynamic_assets.definitions import build_defs
    from dynamic_assets_tests.defs.datasets.test_quality_checks import declarations

    decls = declarations(
        [
            {
                "type": "expect_column_values_to_be_between",
                "column": "volume",
                "max_value": 1000,
                "severity": "error",
            }
        ]
    )
    result = run_version(build_defs(settings, decls), instance, "market", VERSION)
    assert not result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not evaluations["volume_between"].passed
    assert evaluations["rows_castable"].passed
    # Recorded in the instance, as the UI shows them: the check evaluations, and no
    # materialization of the staging partition; the partition is failed.
    records = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(raw_key("market"), "volume_between"), limit=5
    )
    assert records and records[0].evaluation.passed is False
    assert instance.get_latest_materialization_event(raw_key("market")) is None
    assert instance.get_latest_materialization_event(curated_key("market")) is None
    failed = instance.get_status_by_partition(
        raw_key("market"), [VERSION], dg.DynamicPartitionsDefinition(name="market_versions")
    )
    assert failed == {VERSION: dg.AssetPartitionStatus.FAILED}
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failure.step_key.startswith("ai_raw")
    assert "expect_column_values_to_be_between on volume failed" in str(
        failure.step_failure_data.user_failure_data.metadata["failures"].value
    )


def test_a_typed_table_built_from_other_files_is_built_again_not_swapped_in(
    defs, instance, db, drive_root, drive, decls
):
    from dynamic_assets.datasets import pipeline

    assert run_version(defs, instance, "market", VERSION, selection=[raw_key("market")]).success
    with db.connect() as conn:
        (built,) = conn.execute("SELECT table_name FROM curated_builds").fetchone()
    # A file is added and the version staged again, and the process dies before its checks:
    # the table built before holds the earlier files only.
    extra = drive_root / "datasets" / "market" / VERSION / "extra.csv"
    extra.write_text(
        "date,symbol,exchange,open,high,low,close,volume,note\n"
        "2024-05-03,ZZZZ,NYSE,1.00,1.10,0.90,1.05,100,\n",
        encoding="utf-8",
    )
    pipeline.stage(db, drive, decls, decls.dataset("market"), VERSION)

    assert run_version(defs, instance, "market", VERSION, selection=[curated_key("market")]).success
    status, fingerprint, row_count = _registered(db)
    assert (status, row_count, _curated_rows(db)) == ("curated", 561, 561)
    with db.connect() as conn:
        assert conn.execute("SELECT to_regclass(%s)", (f"ai_curated.{built}",)).fetchone() == (
            None,
        )
        fp = compute_fingerprint(conn, decls.dataset("market"), VERSION)
    assert fp.fingerprint == fingerprint and fp.rows == 561
    assert f"datasets/market/{VERSION}/extra.csv" in [f["path"] for f in fp.files]


def test_the_fingerprint_asset_reads_the_committed_fingerprint_and_computes_a_missing_one(
    defs, instance, db
):
    from dynamic_assets.defs.provenance.keys import fingerprint_key

    assert run_version(defs, instance, "market", VERSION).success
    _, committed, _ = _registered(db)
    meta = instance.get_latest_materialization_event(
        fingerprint_key("market")
    ).asset_materialization
    assert meta.metadata["fingerprint"].value == committed
    assert meta.metadata["files"].value == 2 and meta.metadata["dagster/row_count"].value == 560

    # A version curated by an earlier install, without its fingerprint: computed and stored.
    with db.connect() as conn:
        conn.execute(
            "UPDATE datasets SET fingerprint = NULL, fingerprint_record = NULL "
            "WHERE name = 'market' AND version = %s",
            (VERSION,),
        )
    selection = [fingerprint_key("market")]
    assert run_version(defs, instance, "market", VERSION, selection=selection).success
    assert _registered(db)[1] == committed

    # A stored record that does not list the version's curated files is refused.
    with db.connect() as conn:
        conn.execute(
            "UPDATE datasets SET fingerprint_record = jsonb_set(fingerprint_record, "
            "'{files}', '[]'::jsonb) WHERE name = 'market' AND version = %s",
            (VERSION,),
        )
    refused = run_version(defs, instance, "market", VERSION, selection=selection)
    assert not refused.success
    [failure] = [e for e in refused.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "does not list the version's curated files" in (
        failure.step_failure_data.user_failure_data.description
    )
