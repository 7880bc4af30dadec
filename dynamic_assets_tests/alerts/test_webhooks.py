"""Signed webhooks: signatures that receivers can check, delivery to a receiver on loopback,
retries with backoff, endpoints that fail or hang, and the deliveries log."""

from __future__ import annotations

import json
import time

import pytest

from dynamic_assets.alerts.delivery import deliver, deliver_due, dispatch, enqueue
from dynamic_assets.alerts.endpoints import (
    DeliveryPolicy,
    WebhookConfig,
    WebhookConfigError,
    endpoint_label,
    parse_endpoints,
)
from dynamic_assets.alerts.events import Event
from dynamic_assets.alerts.signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    SignatureError,
    body_of,
    sign,
    signature_header,
    verify_signature,
)
from dynamic_assets.settings import WebhookSettings
from dynamic_assets_tests.support.webhook_receiver import closed_port_url, hung_endpoint, receiver

SECRET = "whsec-TEST-3f9a1c77b2d04e8e"
BODY = b'{"id":"evt_1","type":"run.failed"}'


def event(key: str = "run-1", type_: str = "run.failed") -> Event:
    return Event(type_, key=key, summary=f"{key} failed", dataset="market", version="2024-06-01",
                 data={"run_id": key})  # fmt: skip


def rows(db) -> list[dict]:
    with db.connect() as conn:
        cur = conn.execute(
            "SELECT event_id, event_type, endpoint, endpoint_hash, status, attempts, last_status_code, "
            "last_error, latency_ms, delivered_at, next_attempt_at - now() AS wait, payload::text AS payload "
            "FROM webhook_deliveries ORDER BY id"
        )
        names = [d.name for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


# --- signatures -------------------------------------------------------------------------------


def test_a_signature_verifies_and_rejects_wrong_secret_changed_body_and_old_timestamp():
    now = 1_717_243_200
    header = signature_header(SECRET, BODY, timestamp=now)
    assert header == f"t={now},v1={sign(SECRET, now, BODY)}"
    assert verify_signature(SECRET, header, BODY, now=now + 299) == now
    assert verify_signature(SECRET.encode(), header, BODY, now=now) == now  # bytes secret too

    cases = {
        "wrong secret": (SECRET + "x", header, BODY, now),
        "changed body": (SECRET, header, BODY.replace(b"run", b"RUN"), now),
        "one byte added": (SECRET, header, BODY + b" ", now),
        "old timestamp": (SECRET, header, BODY, now + 301),
        "from the future": (SECRET, header, BODY, now - 301),
        "replayed with a new t": (
            SECRET,
            header.replace(f"t={now}", f"t={now + 100}"),
            BODY,
            now + 100,
        ),
        "no header": (SECRET, None, BODY, now),
        "garbage": (SECRET, "sha256=abc", BODY, now),
        "no v1": (SECRET, f"t={now}", BODY, now),
    }
    reasons = {}
    for name, (secret, hdr, body, at) in cases.items():
        with pytest.raises(SignatureError) as info:
            verify_signature(secret, hdr, body, now=at)
        reasons[name] = str(info.value)
    assert "does not match" in reasons["wrong secret"]
    assert (
        "does not match" in reasons["changed body"]
        and "does not match" in reasons["one byte added"]
    )
    assert (
        reasons["old timestamp"] == "timestamp is 301 s old, outside the 300 s tolerance (replay?)"
    )
    assert "in the future" in reasons["from the future"]
    assert "does not match" in reasons["replayed with a new t"]  # t is under the signature
    assert "no X-Dynamic-Assets-Signature header" in reasons["no header"]
    # A tighter window is the receiver's choice; several v1 entries allow a rotating sender.
    with pytest.raises(SignatureError, match="outside the 60 s"):
        verify_signature(SECRET, header, BODY, tolerance_seconds=60, now=now + 61)
    rotated = f"t={now},v1={sign('old-secret', now, BODY)},v1={sign(SECRET, now, BODY)}"
    assert verify_signature(SECRET, rotated, BODY, now=now) == now


def test_settings_and_config_never_show_the_secret_or_the_urls():
    assert WebhookSettings.from_env({}).enabled is False
    on = WebhookSettings.from_env(
        {"DYNAMIC_ASSETS_WEBHOOK_URLS": "https://a.example/x", "DYNAMIC_ASSETS_WEBHOOK_SECRET": "s"}
    )
    assert on.enabled and "https" not in repr(on)
    config = WebhookConfig(("https://hooks.example.com/T0/B0/token-XYZ",), SECRET)
    assert SECRET not in repr(config)
    assert endpoint_label(config.endpoints[0]).startswith("https://hooks.example.com:443 #")
    assert "token-XYZ" not in endpoint_label(config.endpoints[0])
    with pytest.raises(WebhookConfigError, match="never sent unsigned"):
        WebhookConfig(("https://a.example",), "")
    with pytest.raises(WebhookConfigError) as info:
        parse_endpoints("https://ok.example/a, ftp://user:pw@files.example/x")
    assert "entry 2" in str(info.value) and "pw" not in str(info.value)
    assert parse_endpoints(" https://a.example/1 ,,https://a.example/1, http://b.example ") == (
        "https://a.example/1",
        "http://b.example",
    )


# --- delivery ----------------------------------------------------------------------------------


def test_an_event_arrives_signed_and_is_logged(db):
    db.uri  # noqa: B018 - migrations first, so that the timing below is the delivery's
    with receiver(SECRET) as rec:
        config = WebhookConfig((rec.url,), SECRET)
        started = time.monotonic()
        results = deliver(db, event(), config)
        got = rec.wait_for(1)
    assert [r.status for r in results] == ["delivered"]
    assert len(got) == 1 and got[0].verified, got[0].problem
    latency_ms = (got[0].at - started) * 1000
    assert latency_ms < 1000
    req = got[0]
    assert req.path == "/hooks/dai"
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers[EVENT_HEADER] == "run.failed"
    assert req.headers[DELIVERY_HEADER] == results[0].delivery_id
    assert req.event == event().payload() | {"occurred_at": req.event["occurred_at"]}
    assert req.body == body_of(req.event)  # compact, sorted: what was signed is what was sent
    [row] = rows(db)
    assert row["status"] == "delivered" and row["attempts"] == 1 and row["last_status_code"] == 200
    assert row["delivered_at"] is not None and row["latency_ms"] > 0
    assert row["endpoint"] == endpoint_label(rec.url) and "/hooks/dai" not in row["endpoint"]
    # The same event again (a second sensor tick, a restart) is not sent twice.
    assert deliver(db, event(), config) == []
    assert len(rec.received) == 1 and len(rows(db)) == 1
    print(
        f"\nfirst delivery latency on loopback: {latency_ms:.1f} ms (request {row['latency_ms']:.1f} ms)"
    )


def test_a_500_is_retried_with_backoff_and_then_delivered(db):
    with receiver(SECRET, script=[500, 503]) as rec:
        config = WebhookConfig((rec.url,), SECRET)
        [result] = deliver(db, event(), config)
        got = rec.wait_for(3)
    assert result.status == "delivered" and result.attempts == 3
    assert [r.verified for r in got] == [True, True, True]
    # One delivery id across attempts; each attempt freshly signed.
    assert len({r.headers[DELIVERY_HEADER] for r in got}) == 1
    assert len({r.headers[SIGNATURE_HEADER] for r in got}) >= 1
    gaps = [b.at - a.at for a, b in zip(got, got[1:], strict=False)]
    assert 0.45 <= gaps[0] < 1.5 and 0.95 <= gaps[1] < 2.5  # 0.5 s, then 1 s
    [row] = rows(db)
    assert row["status"] == "delivered" and row["attempts"] == 3 and row["last_error"] is None
    print(f"\nretry gaps after 500, 503: {', '.join(f'{g:.2f} s' for g in gaps)}")


def test_retry_after_is_honoured_within_the_backoff_cap(db):
    with receiver(SECRET, script=[429]) as rec:
        rec.retry_after = "2"
        [result] = deliver(db, event(), WebhookConfig((rec.url,), SECRET))
        got = rec.wait_for(2)
    assert result.status == "delivered" and result.attempts == 2
    assert 1.95 <= got[1].at - got[0].at < 3.0


def test_a_client_error_is_not_retried_at_once_but_later(db):
    with receiver(SECRET, script=[404]) as rec:
        config = WebhookConfig((rec.url,), SECRET)
        [result] = deliver(db, event(), config)
        assert result.status == "retrying" and result.attempts == 1
        [row] = rows(db)
        assert row["last_error"] == "HTTP 404 Not Found" and row["last_status_code"] == 404
        assert 25 < row["wait"].total_seconds() <= 30  # the next pass after 30 s, not now
        assert deliver_due(db, config) == []  # not due yet
        with db.connect() as conn:
            conn.execute("UPDATE webhook_deliveries SET next_attempt_at = now()")
        [again] = deliver_due(db, config)
        assert again.status == "delivered" and again.total_attempts == 2
        assert len(rec.wait_for(2)) == 2


def test_a_dead_endpoint_is_bounded_in_time_and_does_not_delay_a_live_one(db):
    policy = DeliveryPolicy(read_timeout=1.0, call_seconds=3.0)
    dead = closed_port_url()
    with hung_endpoint() as hung, receiver(SECRET) as rec:
        config = WebhookConfig((dead, hung, rec.url), SECRET, policy)
        started = time.monotonic()
        results = dispatch(db, config, [event("run-1"), event("run-2")], budget_seconds=10)
        elapsed = time.monotonic() - started
        live = rec.wait_for(2)
    by_endpoint: dict[str, list[str]] = {}
    for r in results:
        by_endpoint.setdefault(r.endpoint, []).append(r.status)
    assert by_endpoint[endpoint_label(rec.url)] == ["delivered", "delivered"]
    # The dead and the hung endpoint: the first event fails its call, the second waits its turn.
    assert by_endpoint[endpoint_label(dead)] == ["retrying", "deferred"]
    assert by_endpoint[endpoint_label(hung)] == ["retrying", "deferred"]
    assert len(live) == 2 and live[1].at - started < 1.0  # not held up by the others
    assert elapsed < policy.call_seconds + 1.0
    errors = {r.endpoint: r.error for r in results if r.status == "retrying"}
    assert errors[endpoint_label(dead)] == "connection refused"
    assert errors[endpoint_label(hung)] == "no response within 1 s"
    hung_call = next(r for r in results if r.endpoint == endpoint_label(hung) and r.attempts)
    print(
        f"\ndead endpoint: {next(r for r in results if r.endpoint == endpoint_label(dead)).seconds:.2f} s, "
        f"hung endpoint: {hung_call.seconds:.2f} s for {hung_call.attempts} attempt(s), "
        f"live endpoint received both after {live[1].at - started:.3f} s, pass {elapsed:.2f} s"
    )


def test_a_delivery_fails_for_good_after_max_attempts(db):
    policy = DeliveryPolicy(attempts_per_call=2, backoff_initial=0.01, max_attempts=4)
    config = WebhookConfig((closed_port_url(),), SECRET, policy)
    deliver(db, event(), config)
    for _ in range(3):
        with db.connect() as conn:
            conn.execute("UPDATE webhook_deliveries SET next_attempt_at = now()")
        deliver_due(db, config)
    [row] = rows(db)
    assert row["status"] == "failed" and row["attempts"] == 4
    with db.connect() as conn:
        conn.execute("UPDATE webhook_deliveries SET next_attempt_at = now()")
    assert deliver_due(db, config) == []  # never tried again


def test_an_endpoint_removed_from_the_settings_fails_its_waiting_deliveries(db):
    with db.connect() as conn:
        enqueue(conn, [event()], ["https://old.example/hook"])
    with receiver(SECRET) as rec:
        assert deliver_due(db, WebhookConfig((rec.url,), SECRET)) == []
    [row] = rows(db)
    assert row["status"] == "failed" and row["last_error"] == "the endpoint is no longer configured"


def test_the_log_holds_neither_the_secret_nor_the_url_path(db):
    with receiver(SECRET, script=[500, 500, 500], path="/hooks/T000/B000/XXXXtokenXXXX") as rec:
        deliver(db, event(), WebhookConfig((rec.url,), SECRET))
    with db.connect() as conn:
        dump = json.dumps(
            conn.execute("SELECT to_jsonb(w) FROM webhook_deliveries w").fetchall(), default=str
        )
    assert SECRET not in dump and "XXXXtokenXXXX" not in dump
    assert '"last_error": "HTTP 500 Internal Server Error"' in dump
