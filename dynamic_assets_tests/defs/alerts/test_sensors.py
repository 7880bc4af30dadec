"""The alert sensors over real runs: a failed blocking check, a failed run and quarantined files,
a confirmed attestation and a stale dataset each reach a receiver on loopback as a signed event;
a dead endpoint never slows or fails the pipeline."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import dagster as dg
import pytest

from dynamic_assets.alerts.endpoints import endpoint_label
from dynamic_assets.alerts.events import WITHHELD
from dynamic_assets.declarations.model import DEMO_CONFIG, Declarations, load_declarations
from dynamic_assets.definitions import build_defs
from dynamic_assets.defs.alerts.resources import WebhookResource
from dynamic_assets.settings import WebhookSettings
from dynamic_assets_tests.support.runs import run_all, run_version, sensor_context, tick
from dynamic_assets_tests.support.webhook_receiver import closed_port_url, hung_endpoint, receiver

SECRET = "whsec-TEST-alerts-81c0d2"


def declarations(dataset: str, **changes) -> Declarations:
    data = load_declarations(DEMO_CONFIG).model_dump(mode="json")
    target = next(d for d in data["datasets"] if d["name"] == dataset)
    target.update(changes)
    return Declarations.model_validate(data)


@pytest.fixture
def alerting(settings, monkeypatch):
    """Settings with webhooks on; the URL is set per test (DYNAMIC_ASSETS_WEBHOOK_URLS)."""
    monkeypatch.setenv("DYNAMIC_ASSETS_WEBHOOK_SECRET", SECRET)
    return replace(settings, webhooks=WebhookSettings(urls_set=True, secret_set=True))


def run(defs, instance, dataset: str, version: str):
    return run_version(defs, instance, dataset, version, tags={"dataset": dataset})


def run_failure_tick(defs, instance, result) -> None:
    sensor = defs.get_sensor_def("alert_on_run_failure")
    with dg.build_run_status_sensor_context(
        sensor_name="alert_on_run_failure",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources=defs.resources,
    ) as context:
        sensor(context.for_run_failure())


def alerts_tick(defs, instance, cursor=None, resources=None):
    with sensor_context(defs, instance, cursor, resources) as context:
        skip = defs.get_sensor_def("alerts_sensor")(context)
        return skip, context.cursor


def test_the_alert_sensors_run_by_default_and_skip_without_webhooks(defs, instance):
    for name in ("alert_on_run_failure", "alerts_sensor"):
        assert defs.get_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING
    skip, cursor = alerts_tick(defs, instance)
    assert "webhooks are not configured" in skip.skip_message and cursor is None


def test_a_failed_blocking_check_alerts_check_run_and_quarantined_files(
    alerting, instance, monkeypatch
):
    decls = declarations(
        "market",
        expectations=[{"type": "expect_column_values_to_be_between", "column": "volume", "max_value": 1000}],
    )  # fmt: skip
    with receiver(SECRET) as rec:
        monkeypatch.setenv("DYNAMIC_ASSETS_WEBHOOK_URLS", rec.url)
        defs = build_defs(alerting, decls)
        result = run(defs, instance, "market", "2024-06-01")
        assert not result.success
        assert rec.received == []  # nothing is sent from inside a run
        run_failure_tick(defs, instance, result)
        first = rec.wait_for(2)
        skip, cursor = alerts_tick(defs, instance)
        events = [r.event for r in rec.wait_for(4)]
        assert all(r.verified for r in rec.received)
        again, _ = alerts_tick(defs, instance, cursor)
    assert [r.event["type"] for r in first] == ["check.failed", "run.failed"]
    check, failed, *quarantined = events
    assert check["data"]["check"] == "volume_between"
    assert check["data"]["asset"] == "ai_raw/market" and check["data"]["unexpected_count"] == 560
    assert check["dataset"] == "market" and check["version"] == "2024-06-01"
    assert failed["data"]["run_id"] == result.run_id and failed["data"]["job"] == "ingest_market"
    assert [s["step"] for s in failed["data"]["failed_steps"]] == ["ai_raw__market"]
    assert sorted(q["data"]["path"] for q in quarantined) == [
        "datasets/market/2024-06-01/nasdaq.csv",
        "datasets/market/2024-06-01/nyse.csv",
    ]
    assert all(q["type"] == "file.quarantined" for q in quarantined)
    assert "volume" in quarantined[0]["data"]["reason"]  # market is public: the reason is given
    assert "2 event(s) found" in skip.skip_message and "2 delivered" in skip.skip_message
    assert "1 event" not in again.skip_message and len(rec.received) == 4  # nothing twice
    assert SECRET not in cursor and rec.url not in cursor


def test_check_failures_of_a_sensitive_dataset_carry_no_values(alerting, instance, monkeypatch):
    decls = declarations(
        "embeddings",
        expectations=[{"type": "expect_column_values_to_be_between", "column": "score", "max_value": -1}],
    )  # fmt: skip
    with receiver(SECRET) as rec:
        monkeypatch.setenv("DYNAMIC_ASSETS_WEBHOOK_URLS", rec.url)
        defs = build_defs(alerting, decls)
        result = run(defs, instance, "embeddings", "v2.3")
        assert not result.success
        run_failure_tick(defs, instance, result)
        alerts_tick(defs, instance)
        got = rec.wait_for(3)
    by_type: dict[str, list[dict]] = {}
    for r in got:
        by_type.setdefault(r.event["type"], []).append(r.event)
    assert by_type["check.failed"][0]["data"]["description"] == WITHHELD
    assert all(s["error"] == WITHHELD for s in by_type["run.failed"][0]["data"]["failed_steps"])
    assert all(q["data"]["reason"] == WITHHELD for q in by_type["file.quarantined"])
    body = b"".join(r.body for r in got).decode()
    assert "first:" not in body and "examples" not in body


def test_confirmed_attestations_and_a_stale_dataset_are_alerted(
    alerting, instance, monkeypatch, db
):
    decls = declarations("market", freshness={"max_days_between_versions": 2})
    with receiver(SECRET) as rec:
        monkeypatch.setenv("DYNAMIC_ASSETS_WEBHOOK_URLS", rec.url)
        defs = build_defs(alerting, decls)
        assert run(defs, instance, "market", "2024-06-01").success
        skip, cursor = alerts_tick(defs, instance)
        attested = [r.event for r in rec.wait_for(1)]
        with db.connect() as conn:
            conn.execute("UPDATE datasets SET curated_at = now() - interval '3 days'")
        # The next freshness check (every 10 minutes; the cursor says when the last one was).
        import json

        state = json.loads(cursor)
        state["stale_checked"] = "2000-01-01T00:00:00+00:00"
        alerts_tick(defs, instance, json.dumps(state))
        stale = [r.event for r in rec.wait_for(2)][1:]
    [a] = attested
    assert a["type"] == "attestation.confirmed" and a["data"]["stage"] == "ledger"
    assert (a["dataset"], a["version"]) == ("market", "2024-06-01")
    assert a["data"]["ledger_seq"] == 1 and len(a["data"]["fingerprint"]) == 64
    assert a["data"]["proof_path"].startswith("reports/attestations/market/2024-06-01/")
    assert [s["type"] for s in stale] == ["dataset.stale"]
    assert stale[0]["data"]["max_days_between_versions"] == 2
    assert stale[0]["data"]["latest_version"] == "2024-06-01"


def test_a_dead_endpoint_never_blocks_or_fails_the_pipeline(alerting, instance, monkeypatch, db):
    dead = closed_port_url()
    with hung_endpoint() as hung:
        monkeypatch.setenv("DYNAMIC_ASSETS_WEBHOOK_URLS", f"{hung},{dead}")
        defs = build_defs(alerting, load_declarations(DEMO_CONFIG))
        outcomes = run_all(defs, instance, tick(defs, instance))
        assert outcomes and all(r.success for r in outcomes.values())
        fast = {**defs.resources, "webhooks": WebhookResource(
            urls=f"{hung},{dead}", secret=SECRET, read_timeout=1.0, call_seconds=3.0,
            budget_seconds=10.0)}  # fmt: skip
        skip, _ = alerts_tick(defs, instance, resources=fast)
    with db.connect() as conn:
        states = dict(
            conn.execute("SELECT status, count(*) FROM webhook_deliveries GROUP BY 1").fetchall()
        )
        retrying = {
            endpoint: (attempts, error, retry_in)
            for endpoint, attempts, error, retry_in in conn.execute(
                "SELECT endpoint, attempts, last_error, next_attempt_at - last_attempt_at "
                "FROM webhook_deliveries WHERE status = 'retrying'"
            ).fetchall()
        }
    # 6 versions attested -> 6 events for each of the 2 endpoints; one call failed per endpoint,
    # the rest wait for the next pass. The dead endpoint refuses every attempt of the call at
    # once; the hung one takes its 1 s read timeout twice, and no attempt starts that would end
    # past the call's 3 s. Each is retried after the policy's backoff between passes.
    assert states == {"retrying": 2, "pending": 10}
    policy = fast["webhooks"].config().policy
    assert retrying == {
        endpoint_label(dead): (
            policy.attempts_per_call,
            "connection refused",
            timedelta(seconds=policy.next_retry_in(policy.attempts_per_call)),
        ),
        endpoint_label(hung): (
            2,
            "no response within 1 s",
            timedelta(seconds=policy.next_retry_in(2)),
        ),
    }
    assert "2 retrying" in skip.skip_message and "10 deferred" in skip.skip_message
