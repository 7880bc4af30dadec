"""Versions left behind by an earlier run (a curated version without its fingerprint, a
fingerprint never attested) are named by `status` as not final, and every `run` and drive sensor
tick drives them forward to their final state."""

from __future__ import annotations

import json

import dagster as dg
from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets.declarations.model import DEMO_CONFIG
from dynamic_assets.defs.provenance.keys import attestation_key
from dynamic_assets.settings import Settings
from dynamic_assets_tests.support.runs import curate_follow_up, run_request, tick


def env(a) -> dict[str, str]:
    return {
        "DYNAMIC_ASSETS_HOME": str(a.home),
        "DYNAMIC_ASSETS_DRIVE": str(a.drive_root),
        "DYNAMIC_ASSETS_CONFIG": str(DEMO_CONFIG),
        "SUPABASE_DB_URL": a.url,
        "ATTESTATION_PUBLIC_KEY": "",
        "TON_MNEMONIC": "",
        "TON_API_URL": "",
        "DAGSTER_HOME": "",
    }


def cli(a, *args):
    return CliRunner().invoke(main, list(args), env=env(a))


def lose_fingerprint(a, dataset: str, version: str) -> None:
    """What an older install or a crash between the swap and the fingerprint leaves."""
    with a.db.connect() as conn:
        conn.execute(
            """UPDATE datasets SET fingerprint = NULL, content_digest = NULL,
                      fingerprint_record = NULL, fingerprinted_at = NULL
                WHERE name = %s AND version = %s""",
            (dataset, version),
        )
        conn.execute(
            "DELETE FROM dataset_proofs WHERE dataset = %s AND version = %s", (dataset, version)
        )


def lose_attestation(a, dataset: str, version: str) -> None:
    """A run stopped after the fingerprint and before the attestation."""
    with a.db.connect() as conn:
        conn.execute(
            "DELETE FROM dataset_proofs WHERE dataset = %s AND version = %s", (dataset, version)
        )


def states(a) -> dict[tuple[str, str], str]:
    """(dataset, version) -> state of every version `status --json` names as not final."""
    result = cli(a, "status", "--json")
    return {
        (d["dataset"], v["version"]): v["state"]
        for d in json.loads(result.stdout)
        for v in d["versions"]
    }


def test_a_curated_version_without_fingerprint_is_fingerprinted_and_attested_by_run(attested):
    lose_fingerprint(attested, "market", "2024-06-01")
    before = cli(attested, "status")
    assert before.exit_code == 1, before.output
    assert "market 2024-06-01  unfingerprinted" in before.output
    assert cli(attested, "verify", "market", "2024-06-01").exit_code == 1

    result = cli(attested, "run", "--no-train")
    assert result.exit_code == 0, result.output
    assert "Nothing new" not in result.output
    assert "fingerprinted and attested 1 version left without a fingerprint" in result.output
    with attested.db.connect() as conn:
        fingerprint = conn.execute(
            "SELECT fingerprint FROM datasets WHERE name = 'market' AND version = '2024-06-01'"
        ).fetchone()[0]
        proofs = conn.execute(
            "SELECT count(*) FROM dataset_proofs WHERE dataset = 'market' "
            "AND version = '2024-06-01' AND fingerprint = %s",
            (fingerprint,),
        ).fetchone()[0]
    assert fingerprint is not None and proofs == 1
    verified = cli(attested, "verify", "market", "2024-06-01")
    assert verified.exit_code == 0, verified.output
    after = cli(attested, "status")
    assert after.exit_code == 0, after.output
    assert states(attested) == {}


def test_a_fingerprinted_version_never_attested_is_attested_by_run(attested):
    lose_attestation(attested, "corpus", "v1.0")
    lose_attestation(attested, "embeddings", "v2.3.1")
    result = cli(attested, "run", "--no-train")
    assert result.exit_code == 0, result.output
    assert "Nothing new" not in result.output
    assert "attested 2 versions left unattested" in result.output
    for dataset, version in [("corpus", "v1.0"), ("embeddings", "v2.3.1")]:
        assert cli(attested, "verify", dataset, version).exit_code == 0
    again = cli(attested, "run", "--no-train")
    assert again.exit_code == 0 and "Nothing new" in again.output


def test_status_names_each_version_not_final_and_is_green_once_all_are(attested):
    ok = cli(attested, "status")
    assert ok.exit_code == 0, ok.output

    lose_attestation(attested, "corpus", "v1.0")
    lose_fingerprint(attested, "market", "2024-06-01")
    result = cli(attested, "status")
    assert result.exit_code == 1
    assert "corpus v1.0  curated" in result.output
    assert "market 2024-06-01  unfingerprinted" in result.output
    assert states(attested) == {
        ("corpus", "v1.0"): "curated",
        ("market", "2024-06-01"): "unfingerprinted",
    }

    assert cli(attested, "run", "--no-train").exit_code == 0
    assert states(attested) == {}
    assert cli(attested, "status").exit_code == 0


def test_the_drive_sensor_requests_the_attestation_of_a_version_left_unattested(
    attested, monkeypatch
):
    from dynamic_assets.definitions import build_defs

    monkeypatch.setenv("SUPABASE_DB_URL", attested.url)
    settings = Settings(
        home=attested.home,
        drive_root=attested.drive_root,
        config_path=DEMO_CONFIG,
        db_url_set=True,
    )
    defs = build_defs(settings, attested.decls)
    with dg.instance_for_test() as instance:
        first = tick(defs, instance)
        for req in first.dynamic_partitions_requests:
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        quiet = tick(defs, instance, first.cursor)
        assert quiet.run_requests == []

        lose_attestation(attested, "corpus", "v1.0")
        result = tick(defs, instance, first.cursor)
        assert [(r.tags["dataset"], r.partition_key) for r in result.run_requests] == [
            ("corpus", "v1.0")
        ]
        request = result.run_requests[0]
        assert request.job_name == "curate_corpus"
        assert request.asset_selection == [attestation_key("corpus")]
        repeated = tick(defs, instance, first.cursor)
        assert [r.run_key for r in repeated.run_requests] == [request.run_key]

        # While a run of the version is in progress, a tick asks for no second one.
        queued = dg.DagsterRun(
            job_name=request.job_name,
            run_id="0" * 8 + "-0000-0000-0000-" + "0" * 12,
            status=dg.DagsterRunStatus.STARTED,
            tags=request.tags,
        )
        instance.add_run(queued)
        assert tick(defs, instance, first.cursor).run_requests == []
        instance.delete_run(queued.run_id)

        run = defs.get_job_def(request.job_name).execute_in_process(
            partition_key=request.partition_key,
            instance=instance,
            asset_selection=request.asset_selection,
            raise_on_error=False,
            tags=request.tags,
        )
        assert run.success
        assert tick(defs, instance, first.cursor).run_requests == []
    assert cli(attested, "verify", "corpus", "v1.0").exit_code == 0


def test_the_reconcile_schedule_retries_a_version_left_without_fingerprint_each_hour(
    attested, monkeypatch
):
    from datetime import UTC, datetime

    from dynamic_assets.definitions import build_defs

    monkeypatch.setenv("SUPABASE_DB_URL", attested.url)
    settings = Settings(
        home=attested.home,
        drive_root=attested.drive_root,
        config_path=DEMO_CONFIG,
        db_url_set=True,
    )
    defs = build_defs(settings, attested.decls)
    schedule = defs.get_schedule_def("hourly_reconcile_market")

    def evaluate(instance, hour: int) -> list[dg.RunRequest]:
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2024, 7, 1, hour, tzinfo=UTC),
            resources=defs.resources,
        ) as context:
            result = schedule(context)
        return [] if isinstance(result, dg.SkipReason) else list(result)

    with dg.instance_for_test() as instance:
        assert evaluate(instance, 10) == []
        lose_fingerprint(attested, "market", "2024-06-01")
        at_ten, at_eleven = evaluate(instance, 10), evaluate(instance, 11)
        assert [(r.tags["dataset"], r.partition_key) for r in at_ten] == [("market", "2024-06-01")]
        # The whole ingest job: staged again, then curated by the curate sensor's run.
        assert at_ten[0].job_name == "ingest_market"
        assert at_ten[0].asset_selection is None
        assert at_ten[0].tags["trigger"] == "reconcile"
        assert at_ten[0].run_key != at_eleven[0].run_key
        staged = run_request(defs, instance, at_ten[0])
        assert staged.success
        follow = curate_follow_up(defs, instance, staged)
        assert follow is not None and follow.job_name == "curate_market"
        assert follow.tags["trigger"] == "reconcile"
        assert run_request(defs, instance, follow).success
        assert evaluate(instance, 12) == []
    assert cli(attested, "verify", "market", "2024-06-01").exit_code == 0


def test_the_attest_schedule_retries_a_version_left_unattested_each_hour(attested, monkeypatch):
    """A schedule launches its one job: the attestation run is the curate job's, so the hourly
    retry of a fingerprinted version not attested is `hourly_attest_*`'s, not the reconcile's."""
    from datetime import UTC, datetime

    from dynamic_assets.definitions import build_defs

    monkeypatch.setenv("SUPABASE_DB_URL", attested.url)
    settings = Settings(
        home=attested.home,
        drive_root=attested.drive_root,
        config_path=DEMO_CONFIG,
        db_url_set=True,
    )
    defs = build_defs(settings, attested.decls)

    def evaluate(instance, name: str, hour: int) -> list[dg.RunRequest]:
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2024, 7, 1, hour, tzinfo=UTC),
            resources=defs.resources,
        ) as context:
            result = defs.get_schedule_def(name)(context)
        return [] if isinstance(result, dg.SkipReason) else list(result)

    with dg.instance_for_test() as instance:
        assert evaluate(instance, "hourly_attest_market", 10) == []
        lose_attestation(attested, "market", "2024-06-01")
        assert evaluate(instance, "hourly_reconcile_market", 10) == []
        at_ten = evaluate(instance, "hourly_attest_market", 10)
        at_eleven = evaluate(instance, "hourly_attest_market", 11)
        assert [(r.job_name, r.partition_key) for r in at_ten] == [("curate_market", "2024-06-01")]
        assert at_ten[0].asset_selection == [attestation_key("market")]
        assert at_ten[0].tags["trigger"] == "reconcile"
        assert at_ten[0].run_key != at_eleven[0].run_key
        assert run_request(defs, instance, at_ten[0]).success
        assert evaluate(instance, "hourly_attest_market", 12) == []
    assert cli(attested, "verify", "market", "2024-06-01").exit_code == 0
