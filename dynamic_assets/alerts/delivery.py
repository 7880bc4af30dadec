"""Delivery: signed POSTs with retries, and the `webhook_deliveries` log that makes delivery
never block the pipeline.

Events are written to `webhook_deliveries` (one row per event and endpoint, unique, so an event is
never sent twice to an endpoint) and delivered by the alert sensors within a time budget: each
call makes up to `attempts_per_call` attempts with exponential backoff (tenacity), bounded in time
by `call_seconds`; an endpoint that failed is skipped for the rest of the pass, and its rows are
retried by later passes after 30 s, 1 min, 2 min, ... up to `max_attempts`, then marked `failed`.
Rows record status, attempts, the last HTTP status and error and the latency. The secret is never
stored or logged, and endpoints are stored and logged redacted (scheme, host, port, and a hash of
the full URL, whose path may carry a token).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
import requests
from psycopg.types.json import Jsonb
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.stop import stop_base

from dynamic_assets.alerts.endpoints import (
    DeliveryPolicy,
    WebhookConfig,
    endpoint_hash,
    endpoint_label,
)
from dynamic_assets.alerts.events import Event
from dynamic_assets.alerts.signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    body_of,
    signature_header,
)
from dynamic_assets.db import Database

USER_AGENT = "dynamic-assets-webhooks/1"


@dataclass
class DeliveryResult:
    """One call's outcome for one (event, endpoint) delivery."""

    delivery_id: str
    event_id: str
    event_type: str
    endpoint: str  # redacted label
    status: str  # delivered | retrying | failed | deferred
    attempts: int  # in this call
    total_attempts: int
    status_code: int | None = None
    error: str | None = None
    latency_ms: float | None = None  # of the attempt that succeeded
    seconds: float = 0.0  # the whole call, waits included


class _Retryable(Exception):
    def __init__(self, message: str, status_code: int | None = None, retry_after: float = 0.0):
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after


class _Permanent(Exception):
    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


def _describe(exc: requests.RequestException, read_timeout: float) -> str:
    """What went wrong, without the URL (requests puts path and query in its messages)."""
    if isinstance(exc, requests.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, requests.ReadTimeout):
        return f"no response within {read_timeout:g} s"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error (certificate not trusted or handshake failed)"
    if isinstance(exc, requests.ConnectionError):
        cause: BaseException | None = exc
        seen = 0
        while cause is not None and seen < 10:
            if isinstance(cause, ConnectionRefusedError):
                return "connection refused"
            if isinstance(cause, ConnectionResetError):
                return "connection reset"
            cause = cause.__cause__ or cause.__context__
            seen += 1
        text = str(exc)
        if "Name or service not known" in text or "nodename nor servname" in text:
            return "host name not found"
        if "RemoteDisconnected" in text or "closed connection" in text:
            return "connection closed without a response"
        return "connection failed"
    return type(exc).__name__


def _retry_after(response: requests.Response) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return 0.0


def _post(
    session: requests.Session,
    url: str,
    body: bytes,
    headers: dict[str, str],
    secret: str,
    policy: DeliveryPolicy,
    deadline: float,
) -> tuple[int, float]:
    """One signed POST; returns (status code, latency ms) or raises _Retryable / _Permanent."""
    remaining = max(0.05, deadline - time.monotonic())
    signed = {**headers, SIGNATURE_HEADER: signature_header(secret, body)}
    started = time.perf_counter()
    try:
        response = session.post(
            url,
            data=body,
            headers=signed,
            timeout=(min(policy.connect_timeout, remaining), min(policy.read_timeout, remaining)),
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise _Retryable(_describe(exc, min(policy.read_timeout, remaining))) from None
    latency = (time.perf_counter() - started) * 1000
    code = response.status_code
    response.close()
    if 200 <= code < 300:
        return code, latency
    reason = f"HTTP {code}" + (f" {response.reason}" if response.reason else "")
    if code in (408, 425, 429) or code >= 500:
        raise _Retryable(reason, code, _retry_after(response))
    if 300 <= code < 400:
        reason += " (redirects are not followed: configure the final URL)"
    raise _Permanent(reason, code)


class _OutOfTime(stop_base):
    """Stop when the next attempt would start after `end` (monotonic seconds)."""

    def __init__(self, end: float) -> None:
        self.end = end

    def __call__(self, retry_state: RetryCallState) -> bool:
        return time.monotonic() + retry_state.upcoming_sleep + 0.05 >= self.end


def send_with_retries(
    session: requests.Session,
    url: str,
    payload: Mapping[str, Any],
    secret: str,
    *,
    delivery_id: str,
    policy: DeliveryPolicy = DeliveryPolicy(),
    deadline: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[bool, int, int | None, str | None, float | None]:
    """POST one event to one endpoint, retrying transient failures (connection errors, timeouts,
    408/425/429/5xx) with exponential backoff, never past `deadline` (monotonic) nor
    `policy.call_seconds`. Returns (delivered, attempts, last status code, last error, latency ms).
    """
    body = body_of(payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: str(payload.get("type", "")),
        DELIVERY_HEADER: delivery_id,
    }
    end = time.monotonic() + policy.call_seconds
    end = min(end, deadline) if deadline is not None else end

    def wait(rs: RetryCallState) -> float:
        base = min(policy.backoff_max, policy.backoff_initial * 2 ** (rs.attempt_number - 1))
        exc = rs.outcome.exception() if rs.outcome else None
        hint = getattr(exc, "retry_after", 0.0) or 0.0
        return min(policy.backoff_max, max(base, hint))

    attempts = 0
    latency: float | None = None
    code: int | None = None
    retrying = Retrying(
        stop=stop_after_attempt(policy.attempts_per_call) | _OutOfTime(end),
        wait=wait,
        retry=retry_if_exception_type(_Retryable),
        sleep=sleep,
        reraise=True,
    )
    try:
        for attempt in retrying:
            with attempt:
                if end - time.monotonic() <= 0.05:
                    raise _Retryable("no time left in this pass")
                attempts += 1
                code, latency = _post(session, url, body, headers, secret, policy, end)
        return True, attempts, code, None, latency
    except (_Retryable, _Permanent) as exc:
        return False, attempts, exc.status_code, str(exc), None


def enqueue(conn: psycopg.Connection, events: Iterable[Event], endpoints: Iterable[str]) -> int:
    """Record each event for each endpoint in `webhook_deliveries` (once: an event already
    recorded for an endpoint is not added again); returns how many rows were added."""
    added = 0
    urls = list(endpoints)
    for event in events:
        payload = event.payload()
        for url in urls:
            cur = conn.execute(
                """INSERT INTO public.webhook_deliveries
                       (delivery_id, event_id, event_type, dataset, version, endpoint, endpoint_hash, payload)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (event_id, endpoint_hash) DO NOTHING""",
                (
                    str(uuid.uuid4()),
                    event.id,
                    event.type,
                    event.dataset,
                    event.version,
                    endpoint_label(url),
                    endpoint_hash(url),
                    Jsonb(payload),
                ),
            )
            added += cur.rowcount
    return added


@dataclass
class _Claimed:
    id: int
    delivery_id: str
    event_id: str
    event_type: str
    endpoint: str
    endpoint_hash: str
    payload: dict
    attempts: int


def _claim(conn: psycopg.Connection, lease_seconds: float, limit: int) -> list[_Claimed]:
    rows = conn.execute(
        """WITH due AS (
               SELECT id FROM public.webhook_deliveries
                WHERE status IN ('pending', 'retrying') AND next_attempt_at <= now()
                ORDER BY next_attempt_at, id LIMIT %s FOR UPDATE SKIP LOCKED)
           UPDATE public.webhook_deliveries w
              SET next_attempt_at = now() + make_interval(secs => %s)
             FROM due WHERE w.id = due.id
           RETURNING w.id, w.delivery_id, w.event_id, w.event_type, w.endpoint, w.endpoint_hash,
                     w.payload, w.attempts""",
        (limit, lease_seconds),
    ).fetchall()
    return sorted((_Claimed(*r) for r in rows), key=lambda c: c.id)


def _record(
    db: Database,
    row: _Claimed,
    policy: DeliveryPolicy,
    ok: bool,
    attempts: int,
    code: int | None,
    error: str | None,
    latency: float | None,
) -> tuple[str, int]:
    total = row.attempts + attempts
    if ok:
        status = "delivered"
        retry_in = 0.0
    elif total >= policy.max_attempts:
        status = "failed"
        retry_in = 0.0
    else:
        status = "retrying"
        retry_in = policy.next_retry_in(total)
    with db.connect() as conn:
        conn.execute(
            """UPDATE public.webhook_deliveries
                  SET status = %s, attempts = %s, last_status_code = %s, last_error = %s,
                      latency_ms = coalesce(%s, latency_ms), last_attempt_at = now(),
                      next_attempt_at = now() + make_interval(secs => %s),
                      delivered_at = CASE WHEN %s THEN now() ELSE delivered_at END
                WHERE id = %s""",
            (status, total, code, error, latency, retry_in, ok, row.id),
        )
    return status, total


def _release(db: Database, ids: list[int], *, failed_reason: str | None = None) -> None:
    if not ids:
        return
    with db.connect() as conn:
        if failed_reason:
            conn.execute(
                """UPDATE public.webhook_deliveries SET status = 'failed', last_error = %s
                    WHERE id = ANY(%s)""",
                (failed_reason, ids),
            )
        else:
            conn.execute(
                "UPDATE public.webhook_deliveries SET next_attempt_at = now() WHERE id = ANY(%s)",
                (ids,),
            )


def deliver_due(
    db: Database,
    config: WebhookConfig,
    *,
    budget_seconds: float = 30.0,
    limit: int = 200,
    sleep: Callable[[float], None] = time.sleep,
) -> list[DeliveryResult]:
    """Deliver every due row of `webhook_deliveries` (new, or waiting for a retry), endpoints in
    parallel, within `budget_seconds`. Never raises for an endpoint's failure: it is recorded.

    Rows are claimed with a lease (two sensors never send the same row at once). An endpoint
    that fails a whole call is skipped for the rest of this pass; its other rows stay due.
    """
    started = time.monotonic()
    deadline = started + budget_seconds
    with db.connect() as conn:
        claimed = _claim(conn, budget_seconds + config.policy.call_seconds + 5, limit)
    by_endpoint: dict[str, list[_Claimed]] = {}
    for row in claimed:
        by_endpoint.setdefault(row.endpoint_hash, []).append(row)
    gone = [r.id for h, rows in by_endpoint.items() if config.url_of(h) is None for r in rows]
    _release(db, gone, failed_reason="the endpoint is no longer configured")

    def run(hash_: str, rows: list[_Claimed]) -> list[DeliveryResult]:
        url = config.url_of(hash_)
        assert url is not None
        results: list[DeliveryResult] = []
        with requests.Session() as session:
            session.trust_env = True
            for i, row in enumerate(rows):
                if deadline - time.monotonic() < 0.5:
                    _release(db, [r.id for r in rows[i:]])
                    results += [_deferred(r, "no time left in this pass") for r in rows[i:]]
                    break
                t0 = time.monotonic()
                ok, attempts, code, error, latency = send_with_retries(
                    session,
                    url,
                    row.payload,
                    config.secret,
                    delivery_id=row.delivery_id,
                    policy=config.policy,
                    deadline=deadline,
                    sleep=sleep,
                )
                status, total = _record(db, row, config.policy, ok, attempts, code, error, latency)
                results.append(
                    DeliveryResult(
                        row.delivery_id,
                        row.event_id,
                        row.event_type,
                        row.endpoint,
                        status,
                        attempts,
                        total,
                        code,
                        error,
                        latency,
                        time.monotonic() - t0,
                    )
                )
                if not ok:  # the endpoint is down: leave its other rows for a later pass
                    _release(db, [r.id for r in rows[i + 1 :]])
                    results += [
                        _deferred(r, "endpoint failed earlier in this pass") for r in rows[i + 1 :]
                    ]
                    break
        return results

    live = {h: rows for h, rows in by_endpoint.items() if config.url_of(h) is not None}
    results: list[DeliveryResult] = []
    if live:
        with ThreadPoolExecutor(max_workers=min(8, len(live))) as pool:
            for out in pool.map(lambda item: run(*item), live.items()):
                results.extend(out)
    return results


def _deferred(row: _Claimed, why: str) -> DeliveryResult:
    return DeliveryResult(
        row.delivery_id,
        row.event_id,
        row.event_type,
        row.endpoint,
        "deferred",
        0,
        row.attempts,
        error=why,
    )


def dispatch(
    db: Database,
    config: WebhookConfig,
    events: Iterable[Event],
    *,
    budget_seconds: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[DeliveryResult]:
    """Record the events for every endpoint, then deliver what is due (these and earlier ones
    waiting for a retry) within the budget."""
    events = list(events)
    if events:
        with db.connect() as conn:
            enqueue(conn, events, config.endpoints)
    return deliver_due(db, config, budget_seconds=budget_seconds, sleep=sleep)


def deliver(
    db: Database,
    event: Event,
    config: WebhookConfig,
    *,
    budget_seconds: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[DeliveryResult]:
    """Send one event to every configured endpoint now (with retries), logged in
    `webhook_deliveries`; returns one result per endpoint. Other due rows go along too."""
    results = dispatch(db, config, [event], budget_seconds=budget_seconds, sleep=sleep)
    return [r for r in results if r.event_id == event.id]
