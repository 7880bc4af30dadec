"""Declared expectations as Dagster asset checks: ERROR blocks promotion, WARN lets it through
and shows; each result explains itself; schema drift and dataset health are reported."""

from __future__ import annotations

import json

import dagster as dg
import pytest
from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets.declarations.model import DEMO_CONFIG, Declarations, load_declarations
from dynamic_assets.definitions import build_defs
from dynamic_assets_tests.support.runs import curate_follow_up, run_request, run_version


def declarations(expectations: list[dict]) -> Declarations:
    decls = load_declarations(DEMO_CONFIG)
    data = decls.model_dump(mode="json")
    market = next(d for d in data["datasets"] if d["name"] == "market")
    market["expectations"] = expectations
    return Declarations.model_validate(data)


def run_market(defs, instance, version="2024-06-01"):
    return run_version(defs, instance, "market", version)


def evaluations(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def curated_rows(db, version="2024-06-01") -> int:
    """The version's rows in `ai_curated.market`: 0 when the table does not exist (no version
    of market was ever promoted); any other error is raised."""
    with db.connect() as conn:
        if conn.execute("SELECT to_regclass('ai_curated.market')").fetchone()[0] is None:
            return 0
        return conn.execute(
            "SELECT count(*) FROM ai_curated.market WHERE dataset_version = %s", (version,)
        ).fetchone()[0]


def test_a_failing_error_expectation_blocks_promotion_with_examples(settings, instance, db):
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
    result = run_market(build_defs(settings, decls), instance)
    assert not result.success
    check = evaluations(result)["volume_between"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    meta = check.metadata
    assert meta["expectation"].value == "expect_column_values_to_be_between"
    assert meta["unexpected_count"].value == 560  # every demo bar trades more than 1,000 shares
    assert meta["unexpected_percent"].value == 100.0
    examples = meta["examples"].value
    assert "datasets/market/2024-06-01/" in examples and "| file | row | value |" in examples
    assert examples.count("\n") == 11  # header, separator and 10 examples
    assert curated_rows(db) == 0  # nothing reached curated
    with db.connect() as conn:
        checks, status = conn.execute(
            "SELECT checks, status FROM etl_runs WHERE step = 'stage' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        quarantined = conn.execute(
            "SELECT count(*) FROM onedrive_ingest WHERE status = 'quarantined'"
        ).fetchone()[0]
    assert status == "failed"
    assert checks["volume_between"]["passed"] is False
    assert quarantined == 2  # both files of the version hold bad rows


def test_a_failing_warn_expectation_lets_the_version_through_and_shows(settings, instance, db):
    decls = declarations(
        [
            {
                "type": "expect_column_values_to_be_between",
                "column": "close",
                "max_value": 1,
                "severity": "warn",
            },
            {"type": "expect_table_row_count_to_be_between", "min_value": 1, "max_value": 10_000},
        ]
    )
    defs = build_defs(settings, decls)
    # The checks are evaluated in the staging run; the curate sensor's run promotes the version.
    result = run_version(defs, instance, "market", "2024-06-01", job="ingest_market")
    assert result.success
    follow = curate_follow_up(defs, instance, result)
    assert follow is not None and run_request(defs, instance, follow).success
    checks = evaluations(result)
    warn = checks["close_between"]
    assert not warn.passed and warn.severity == dg.AssetCheckSeverity.WARN
    assert warn.metadata["unexpected_count"].value == 560
    rows = checks["row_count_between"]
    assert rows.passed and rows.metadata["observed_value"].value == "560"
    assert curated_rows(db) == 560


def test_an_unknown_expectation_is_a_failed_check_not_a_crash(settings, instance, db):
    decls = declarations([{"type": "expect_the_moon", "column": "close"}])
    result = run_market(build_defs(settings, decls), instance)
    check = evaluations(result)["close_the_moon"]
    assert not check.passed
    assert "could not run" in check.description and "expect_the_moon" in check.description


def test_schema_drift_is_reported_against_the_previous_version(
    settings, instance, db, drive_root, decls
):
    defs = build_defs(settings, decls)
    assert run_market(defs, instance, "2024-06-01").success
    # In the next version, volume carries decimals: the source retyped the column.
    folder = drive_root / "datasets" / "market" / "2024-07-01"
    for f in folder.glob("*.csv"):
        lines = f.read_text(encoding="utf-8").split("\n")
        out = [lines[0]]
        for line in lines[1:]:
            if line.count(",") >= 8 and line[:4].isdigit():
                parts = line.split(",")
                parts[7] = parts[7] + ".5"
                line = ",".join(parts)
            out.append(line)
        f.write_text("\n".join(out), encoding="utf-8")
    result = run_market(defs, instance, "2024-07-01")
    schema = evaluations(result)["schema_unchanged"]
    assert not schema.passed and schema.severity == dg.AssetCheckSeverity.WARN
    assert "compared with version 2024-06-01" in schema.description
    assert "volume (integer -> float)" in schema.description
    # volume must be an integer: the castable check blocks it too.
    assert not evaluations(result)["rows_castable"].passed


def test_status_names_failing_checks_and_quarantined_files(
    settings, instance, db, db_url, tmp_path
):
    decls = declarations(
        [{"type": "expect_column_values_to_be_between", "column": "volume", "max_value": 1000}]
    )
    config = tmp_path / "decls.yaml"
    from dynamic_assets.declarations.model import save_declarations

    save_declarations(decls, config)
    run_market(build_defs(settings, decls), instance)
    env = {
        "DYNAMIC_ASSETS_CONFIG": str(config),
        "SUPABASE_DB_URL": db_url,
        "DYNAMIC_ASSETS_HOME": str(tmp_path / "h"),
    }
    result = CliRunner().invoke(main, ["status"], env=env)
    assert result.exit_code == 1
    assert "market 2024-06-01  check volume_between failing" in result.output
    assert "datasets/market/2024-06-01/nyse.csv quarantined" in result.output

    as_json = CliRunner().invoke(main, ["status", "--json"], env=env)
    report = {d["dataset"]: d for d in json.loads(as_json.output)}
    assert report["market"]["blocking_failure"] is True
    assert (
        report["corpus"]["blocking_failure"] is False and report["corpus"]["latest_version"] is None
    )


@pytest.mark.parametrize("days", [7])
def test_freshness_policy_is_declared_on_the_curated_asset(settings, days):
    decls = load_declarations(DEMO_CONFIG)
    data = decls.model_dump(mode="json")
    data["datasets"][0]["freshness"] = {"max_days_between_versions": days}
    defs = build_defs(settings, Declarations.model_validate(data))
    spec = next(
        s for s in defs.resolve_all_asset_specs() if s.key == dg.AssetKey(["ai_curated", "market"])
    )
    assert spec.freshness_policy is not None
    assert (
        "7 days" in str(spec.freshness_policy)
        or "604800" in str(spec.freshness_policy)
        or spec.freshness_policy.fail_window.to_timedelta().days == 7
    )


def test_a_hostile_value_set_is_compared_as_data_and_blames_the_file_at_fault(
    settings, instance, db
):
    attack = "Q')) AND (SELECT lo_import($$/etc/hostname$$)) > 0 -- \""
    decls = declarations(
        [
            {
                "type": "expect_column_values_to_be_in_set",
                "column": "exchange",
                "value_set": [attack, "NYSE"],
            }
        ]
    )
    result = run_market(build_defs(settings, decls), instance)
    assert not result.success
    check = evaluations(result)["exchange_in_set"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "datasets/market/2024-06-01/nasdaq.csv" in check.metadata["examples"].value
    assert curated_rows(db) == 0
    with db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()[0] == 0
        quarantined = conn.execute(
            "SELECT path FROM onedrive_ingest WHERE status = 'quarantined'"
        ).fetchall()
    assert quarantined == [("datasets/market/2024-06-01/nasdaq.csv",)]  # every NYSE row is in set


def test_a_quarantined_versions_staging_partition_fails_naming_its_state(settings, instance):
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
    result = run_market(build_defs(settings, decls), instance)
    assert not result.success
    # What the UI reads of the failed partition: the step failure in the instance's event log.
    records = instance.get_records_for_run(
        result.run_id, of_type=dg.DagsterEventType.STEP_FAILURE
    ).records
    [failure] = [r.event_log_entry.dagster_event for r in records]
    assert failure.step_key == "ai_raw__market"
    meta = failure.step_failure_data.user_failure_data.metadata
    assert meta["state"].value == "quarantined"
    located = meta["failures"].value
    assert located and all(f["path"].startswith("datasets/market/2024-06-01/") for f in located)
    assert all(f["row"] is not None and f["column"] == "volume" for f in located), located
    assert all("between" in f["reason"] or "1000" in f["reason"] for f in located), located
