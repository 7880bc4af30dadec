"""Signed webhooks: signatures that receivers can check, delivery to a receiver on loopback,
retries with backoff, endpoints that fail or hang, and the deliveries log."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from dynamic_assets.alerts import signing
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
from dynamic_assets_tests.support.webhook_receiver import closed_port_url, receiver

SECRET = "whsec-TEST-3f9a1c77b2d04e8e"
BODY = b'{"id":"evt_1","type":"run.failed"}'
T = 1_717_243_200
# HMAC-SHA256(SECRET, "1717243200." + BODY), computed with `openssl dgst -sha256 -hmac`.
BODY_SIGNATURE_AT_T = "e1f8fb48aa3628f9145715734173b5672437162a7e5164e21e82c73b993c6e97"


def readme_signature(secret: str, header: str, body: bytes) -> str:
    """The header the README specifies for `body` at the header's own `t`, computed here:
    `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`."""
    t = dict(part.split("=", 1) for part in header.split(","))["t"]
    mac = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


class Clock:
    """The wall clock the signatures read (`time()`), moved on by the backoff's `sleep` instead
    of waiting; `slept` records each wait the policy asked for."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock(T + 0.6)
    monkeypatch.setattr(signing, "time", c)
    return c


def event(key: str = "run-1", type_: str = "run.failed") -> Event:
    return Event(type_, key=key, summary=f"{key} failed", dataset="market", version="2024-06-01",
                 data={"run_id": key})  # fmt: skip


def rows(db) -> list[dict]:
    with db.connect() as conn:
        cur = conn.execute(
            "SELECT event_id, event_type, endpoint, endpoint_hash, status, attempts, last_status_code, "
            "last_error, latency_ms, delivered_at, next_attempt_at - last_attempt_at AS retry_in, "
            "payload::text AS payload "
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


def test_the_signature_is_the_readme_hmac_of_a_fixed_vector():
    assert sign(SECRET, T, BODY) == BODY_SIGNATURE_AT_T
    assert signature_header(SECRET, BODY, timestamp=T) == f"t={T},v1={BODY_SIGNATURE_AT_T}"
    assert readme_signature(SECRET, f"t={T}", BODY) == f"t={T},v1={BODY_SIGNATURE_AT_T}"


def test_a_received_request_carries_the_readme_hmac_of_its_raw_body(db, clock):
    with receiver(SECRET) as rec:
        [result] = deliver(db, event(), WebhookConfig((rec.url,), SECRET), sleep=clock.sleep)
        [got] = rec.wait_for(1)
    assert result.status == "delivered"
    header = got.headers[SIGNATURE_HEADER]
    assert header == readme_signature(SECRET, f"t={T}", got.body)  # t: the sender's clock
    assert json.loads(got.body)["id"] == event().id


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
    with receiver(SECRET) as rec:
        config = WebhookConfig((rec.url,), SECRET)
        results = deliver(db, event(), config)
        got = rec.wait_for(1)
    assert [r.status for r in results] == ["delivered"]
    assert len(got) == 1 and got[0].verified, got[0].problem
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


def test_a_500_is_retried_with_backoff_and_then_delivered(db, clock):
    with receiver(SECRET, script=[500, 503]) as rec:
        config = WebhookConfig((rec.url,), SECRET)
        [result] = deliver(db, event(), config, sleep=clock.sleep)
        got = rec.wait_for(3)
    assert result.status == "delivered" and result.attempts == 3
    assert clock.slept == [0.5, 1.0]  # the policy's exponential backoff
    assert [r.verified for r in got] == [True, True, True]
    # One delivery id across attempts; each attempt signed afresh, at the clock of its sending.
    assert len({r.headers[DELIVERY_HEADER] for r in got}) == 1
    assert [r.headers[SIGNATURE_HEADER] for r in got] == [
        readme_signature(SECRET, f"t={t}", got[0].body) for t in (T, T + 1, T + 2)
    ]
    assert got[0].body == got[1].body == got[2].body
    [row] = rows(db)
    assert row["status"] == "delivered" and row["attempts"] == 3 and row["last_error"] is None


def test_retry_after_is_honoured_within_the_backoff_cap(db, clock):
    with receiver(SECRET, script=[429]) as rec:
        config = WebhookConfig((rec.url,), SECRET)
        rec.retry_after = "2"
        [result] = deliver(db, event("run-1"), config, sleep=clock.sleep)
        rec.script.append(503)
        rec.retry_after = "60"
        [capped] = deliver(db, event("run-2"), config, sleep=clock.sleep)
        got = rec.wait_for(4)
    assert (result.status, result.attempts) == ("delivered", 2)
    assert (capped.status, capped.attempts) == ("delivered", 2)
    assert len(got) == 4
    # Retry-After: 2 waits 2 s (more than the 0.5 s backoff); 60 s is cut to backoff_max.
    assert clock.slept == [2.0, config.policy.backoff_max] == [2.0, 4.0]


def test_a_client_error_is_not_retried_at_once_but_later(db):
    with receiver(SECRET, script=[404]) as rec:
        config = WebhookConfig((rec.url,), SECRET)
        [result] = deliver(db, event(), config)
        assert result.status == "retrying" and result.attempts == 1
        [row] = rows(db)
        assert row["last_error"] == "HTTP 404 Not Found" and row["last_status_code"] == 404
        # The next pass after the policy's 30 s, not now.
        assert (
            row["retry_in"]
            == timedelta(seconds=config.policy.next_retry_in(1))
            == timedelta(seconds=30)
        )
        assert deliver_due(db, config) == []  # not due yet
        with db.connect() as conn:
            conn.execute("UPDATE webhook_deliveries SET next_attempt_at = now()")
        [again] = deliver_due(db, config)
        assert again.status == "delivered" and again.total_attempts == 2
        assert len(rec.wait_for(2)) == 2


class SilentEndpoint:
    """A loopback server that accepts connections and never answers; it counts the connections
    the sender has given up on (closed from its side)."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/never"
        self.closed = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        with conn:
            while conn.recv(65536):
                pass
        with self._lock:
            self.closed += 1

    def close(self) -> None:
        self._sock.close()


def test_a_dead_endpoint_is_bounded_and_does_not_delay_a_live_one(db, clock):
    policy = DeliveryPolicy(read_timeout=1.0, call_seconds=3.0)
    dead = closed_port_url()
    silent = SilentEndpoint()
    try:
        with receiver(SECRET) as rec, ThreadPoolExecutor(1) as pool:
            config = WebhookConfig((dead, silent.url, rec.url), SECRET, policy)
            running = pool.submit(
                dispatch,
                db,
                config,
                [event("run-1"), event("run-2")],
                budget_seconds=10,
                sleep=clock.sleep,
            )
            live = rec.wait_for(2)
            # Both events reached the live endpoint while the silent one still held its first
            # connection open: the endpoints are served side by side.
            given_up_meanwhile = silent.closed
            results = running.result()
    finally:
        silent.close()
    assert len(live) == 2 and all(r.verified for r in live)
    assert given_up_meanwhile == 0
    by_endpoint: dict[str, list[tuple[str, int]]] = {}
    for r in results:
        by_endpoint.setdefault(r.endpoint, []).append((r.status, r.attempts))
    assert by_endpoint[endpoint_label(rec.url)] == [("delivered", 1), ("delivered", 1)]
    # The dead endpoint: refused at once, every attempt of one call; the silent one: a 1 s read
    # timeout each, and no attempt that would start past the call's 3 s. The second event of
    # each waits for a later pass.
    assert by_endpoint[endpoint_label(dead)] == [
        ("retrying", policy.attempts_per_call),
        ("deferred", 0),
    ]
    assert by_endpoint[endpoint_label(silent.url)] == [("retrying", 2), ("deferred", 0)]
    assert sorted(clock.slept) == [0.5, 0.5, 1.0]  # dead: 0.5, 1.0; silent: 0.5
    errors = {r.endpoint: r.error for r in results if r.status == "retrying"}
    assert errors[endpoint_label(dead)] == "connection refused"
    assert errors[endpoint_label(silent.url)] == "no response within 1 s"
    retry_in = {r["endpoint"]: r["retry_in"] for r in rows(db) if r["status"] == "retrying"}
    assert retry_in == {
        endpoint_label(dead): timedelta(seconds=policy.next_retry_in(3)),
        endpoint_label(silent.url): timedelta(seconds=policy.next_retry_in(2)),
    }


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
