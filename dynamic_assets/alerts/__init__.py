"""Signed alerts: events sent as JSON to webhook endpoints, signed with HMAC-SHA256, retried with
backoff, every delivery logged in `webhook_deliveries`.

Events (`Event.type`):

| type | when |
|---|---|
| `check.failed` | a blocking asset check failed (the version did not reach curated) |
| `run.failed` | a run failed |
| `file.quarantined` | a file in the drive was quarantined (it cannot be read, or its rows broke a check) |
| `dataset.stale` | no new curated version within the dataset's freshness policy |
| `attestation.confirmed` | a version's fingerprint is in a signed ledger entry (`stage: ledger`), and again once the entry is anchored on TON (`stage: ton`) |

Each request is a POST of the event as compact JSON (UTF-8) with the headers

    Content-Type: application/json
    X-Dynamic-Assets-Event: run.failed
    X-Dynamic-Assets-Delivery: <uuid of this (event, endpoint) delivery; the same on every retry>
    X-Dynamic-Assets-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>

Receivers check it with `verify_signature(secret, header, raw_body)`: the HMAC must match and
`t` must be within `tolerance_seconds` (default 300 s) of the receiver's clock, so a captured
request cannot be replayed later; a retry is signed again with a fresh `t`. Receivers should
deduplicate on the event's `id` (a retry after a lost response sends the same event again).

Delivery never blocks the pipeline: events are written to `webhook_deliveries` (one row per event
and endpoint, unique, so an event is never sent twice to an endpoint) and delivered by the alert
sensors within a time budget: each call makes up to `attempts_per_call` attempts with exponential
backoff (tenacity), bounded in time by `call_seconds`; an endpoint that failed is skipped for the
rest of the pass, and its rows are retried by later passes after 30 s, 1 min, 2 min, ... up to
`max_attempts`, then marked `failed`. Rows record status, attempts, the last HTTP status and
error and the latency. The secret is never stored or logged, and endpoints are stored and logged
redacted (scheme, host, port, and a hash of the full URL, whose path may carry a token).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import psycopg
import requests
from psycopg.types.json import Jsonb
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from dynamic_assets.db import Database

EVENT_TYPES = (
    "check.failed",
    "run.failed",
    "file.quarantined",
    "dataset.stale",
    "attestation.confirmed",
)
SIGNATURE_HEADER = "X-Dynamic-Assets-Signature"
EVENT_HEADER = "X-Dynamic-Assets-Event"
DELIVERY_HEADER = "X-Dynamic-Assets-Delivery"
DEFAULT_TOLERANCE_SECONDS = 300
USER_AGENT = "dynamic-assets-webhooks/1"
WITHHELD = "withheld: the dataset is declared sensitive"
MAX_DETAIL = 1000


# --- Settings -------------------------------------------------------------------------------


class WebhookConfigError(ValueError):
    """The webhook settings cannot be used; the message never contains a URL or the secret."""


def parse_endpoints(text: str | None) -> tuple[str, ...]:
    """The endpoints of `DYNAMIC_ASSETS_WEBHOOK_URLS` (comma-separated), checked."""
    out: list[str] = []
    for i, raw in enumerate((text or "").split(","), start=1):
        url = raw.strip()
        if not url:
            continue
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WebhookConfigError(
                f"DYNAMIC_ASSETS_WEBHOOK_URLS: entry {i} is not an http(s) URL with a host"
            )
        if any(ch.isspace() for ch in url):
            raise WebhookConfigError(f"DYNAMIC_ASSETS_WEBHOOK_URLS: entry {i} contains whitespace")
        if url not in out:
            out.append(url)
    return tuple(out)


def endpoint_hash(url: str) -> str:
    """A stable id of an endpoint that does not reveal it."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def endpoint_label(url: str) -> str:
    """An endpoint as it may be stored and logged: scheme, host and port, and its hash."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname}:{port} #{endpoint_hash(url)[:8]}"


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard and how long to try. Defaults keep one call under 15 s and a dead endpoint from
    costing a sensor tick more than that."""

    connect_timeout: float = 3.0
    read_timeout: float = 5.0
    attempts_per_call: int = 3
    call_seconds: float = 15.0
    backoff_initial: float = 0.5
    backoff_max: float = 4.0
    max_attempts: int = 12
    retry_after_initial: float = 30.0
    retry_after_max: float = 3600.0

    def next_retry_in(self, attempts: int) -> float:
        """Seconds before a later pass retries a delivery that failed `attempts` times."""
        return min(self.retry_after_max, self.retry_after_initial * 2 ** max(0, attempts - 1))


@dataclass(frozen=True)
class WebhookConfig:
    """Endpoints, the signing secret and the delivery policy (the secret never in a repr)."""

    endpoints: tuple[str, ...]
    secret: str = field(repr=False)
    policy: DeliveryPolicy = DeliveryPolicy()

    def __post_init__(self) -> None:
        if not self.secret:
            raise WebhookConfigError(
                "DYNAMIC_ASSETS_WEBHOOK_SECRET is empty: webhooks are never sent unsigned"
            )

    def url_of(self, hash_: str) -> str | None:
        return next((u for u in self.endpoints if endpoint_hash(u) == hash_), None)


# --- Events -------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Event:
    """One alert. `key` identifies what happened (a run id, a file record, ...): the event id is
    derived from type and key, so the same happening never makes two events."""

    type: str
    key: str
    summary: str
    dataset: str | None = None
    version: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    occurred_at: datetime = field(default_factory=_now)

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {self.type!r}: one of {', '.join(EVENT_TYPES)}")

    @property
    def id(self) -> str:
        return "evt_" + hashlib.sha256(f"{self.type}\x00{self.key}".encode()).hexdigest()[:32]

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "occurred_at": self.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "source": "dynamic_assets",
            "dataset": self.dataset,
            "version": self.version,
            "summary": self.summary,
            "data": dict(self.data),
        }


def body_of(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes sent (and signed): compact JSON, keys sorted, UTF-8."""
    return json.dumps(
        payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=str
    ).encode("utf-8")


def detail(text: str | None, sensitive: bool) -> str | None:
    """An error or check message as it may leave the platform: values of a sensitive dataset
    (messages quote the first bad value) are withheld; long messages are cut."""
    if text is None:
        return None
    if sensitive:
        return WITHHELD
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def attestation_confirmed_event(
    dataset: str,
    version: str,
    fingerprint: str,
    *,
    ledger_seq: int,
    entry_hash: str | None = None,
    merkle_root: str | None = None,
    anchor: Mapping[str, Any] | None = None,
    proof_path: str | None = None,
) -> Event:
    """The `attestation.confirmed` event of one version: `stage` is `ledger` once its fingerprint
    is in a signed ledger entry, `ton` once that entry's root is confirmed on TON.

    The hook point for provenance: the alert sensor builds these from `dataset_proofs` (new
    proofs, and proofs whose anchor was recorded); code that attests can send one directly with
    `dispatch`.
    """
    stage = "ton" if anchor else "ledger"
    data: dict[str, Any] = {
        "stage": stage,
        "fingerprint": fingerprint,
        "ledger_seq": ledger_seq,
        "entry_hash": entry_hash,
        "merkle_root": merkle_root,
        "proof_path": proof_path,
    }
    if anchor:
        data["anchor"] = {
            k: anchor.get(k)
            for k in ("network", "wallet", "tx_hash", "tx_lt", "utime")
            if k in anchor
        }
    where = (
        f"anchored on TON ({anchor.get('network', '?')} tx {anchor.get('tx_hash', '?')})"
        if anchor
        else f"in signed ledger entry {ledger_seq}"
    )
    return Event(
        "attestation.confirmed",
        key=f"{dataset}\x00{version}\x00{fingerprint}\x00{stage}",
        summary=f"{dataset} {version}: fingerprint {fingerprint[:16]}… attested {where}",
        dataset=dataset,
        version=version,
        data=data,
    )


def quarantined_events(
    conn: psycopg.Connection,
    since: datetime,
    sensitive: Iterable[str] = (),
    *,
    limit: int = 500,
) -> tuple[list[Event], datetime]:
    """`file.quarantined` for each `onedrive_ingest` row quarantined (or re-quarantined) after
    `since`; returns the events and the newest time seen (the next `since`)."""
    hidden = set(sensitive)
    rows = conn.execute(
        """SELECT id, dataset, version, path, error, etag, updated_at FROM public.onedrive_ingest
            WHERE status = 'quarantined' AND updated_at > %s ORDER BY updated_at, id LIMIT %s""",
        (since, limit),
    ).fetchall()
    events = [
        Event(
            "file.quarantined",
            key=f"{rid}\x00{etag}",
            summary=f"{path} was quarantined"
            + (f" ({dataset} {version})" if dataset and version else ""),
            dataset=dataset,
            version=version,
            data={
                "ingest_id": rid,
                "path": path,
                "reason": detail(error, dataset in hidden),
            },
            occurred_at=at,
        )
        for rid, dataset, version, path, error, etag, at in rows
    ]
    newest = max((r[6] for r in rows), default=since)
    return events, newest


def attestation_events(
    conn: psycopg.Connection, since: datetime, *, limit: int = 500
) -> tuple[list[Event], datetime]:
    """`attestation.confirmed` for each proof written or anchored after `since` (nothing when the
    provenance tables do not exist); returns the events and the newest time seen."""
    if conn.execute("SELECT to_regclass('public.dataset_proofs')").fetchone()[0] is None:
        return [], since
    rows = conn.execute(
        """SELECT dataset, version, fingerprint, ledger_seq, proof -> 'ledger_entry' ->> 'entry_hash',
                  proof -> 'ledger_entry' ->> 'merkle_root', proof -> 'anchor', drive_path, updated_at
             FROM public.dataset_proofs WHERE updated_at > %s ORDER BY updated_at, id LIMIT %s""",
        (since, limit),
    ).fetchall()
    events = []
    for ds, ver, fp, seq, entry_hash, root, anchor, path, _at in rows:
        events.append(
            attestation_confirmed_event(
                ds,
                ver,
                fp,
                ledger_seq=seq,
                entry_hash=entry_hash,
                merkle_root=root,
                proof_path=path,
            )
        )
        if anchor:
            events.append(
                attestation_confirmed_event(
                    ds,
                    ver,
                    fp,
                    ledger_seq=seq,
                    entry_hash=entry_hash,
                    merkle_root=root,
                    anchor=anchor,
                    proof_path=path,
                )
            )
    newest = max((r[8] for r in rows), default=since)
    return events, newest


def stale_events(health: Iterable[Any]) -> list[Event]:
    """`dataset.stale` for each dataset whose `quality.status.health` says stale: one event per
    staleness episode (keyed by the latest curated version, so a new version starts a new one)."""
    out = []
    for h in health:
        if not h.stale:
            continue
        last = h.curated_at.isoformat() if h.curated_at else None
        out.append(
            Event(
                "dataset.stale",
                key=f"{h.dataset}\x00{h.latest_version or '-'}\x00{h.freshness_days}",
                summary=(
                    f"{h.dataset}: no new curated version for more than {h.freshness_days} day(s)"
                    + (
                        f" (latest: {h.latest_version}, curated {last})"
                        if h.latest_version
                        else " (none yet)"
                    )
                ),
                dataset=h.dataset,
                version=h.latest_version,
                data={
                    "latest_version": h.latest_version,
                    "curated_at": last,
                    "max_days_between_versions": h.freshness_days,
                },
            )
        )
    return out


# --- Signatures ---------------------------------------------------------------------------------


class SignatureError(ValueError):
    """A webhook request whose signature does not verify; the message says why."""


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `"<timestamp>." + body` under `secret`."""
    message = str(int(timestamp)).encode("ascii") + b"." + body
    return hmac.new(_key(secret), message, hashlib.sha256).hexdigest()


def signature_header(secret: str | bytes, body: bytes, timestamp: int | None = None) -> str:
    """The `X-Dynamic-Assets-Signature` value: `t=<timestamp>,v1=<signature>`."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},v1={sign(secret, t, body)}"


def verify_signature(
    secret: str | bytes,
    header: str | None,
    body: bytes,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """Check a request's `X-Dynamic-Assets-Signature` against its raw body; returns the signed
    timestamp. Raises `SignatureError` when the header is missing or malformed, when no `v1`
    signature matches (wrong secret, or a body changed by a single byte), or when the timestamp
    is more than `tolerance_seconds` from `now` (a replayed or delayed request).

    Pass the body exactly as received (the bytes, not parsed and re-serialized JSON). Several
    `v1=` entries are accepted (any one may match), for secret rotation on the sender's side.
    """
    if not header:
        raise SignatureError(f"no {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError(f"malformed {SIGNATURE_HEADER} header")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError(f"malformed timestamp in {SIGNATURE_HEADER}") from None
        elif name == "v1":
            signatures.append(value.strip().lower())
    if timestamp is None or not signatures:
        raise SignatureError(f"{SIGNATURE_HEADER} needs t=<timestamp> and v1=<signature>")
    expected = sign(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        raise SignatureError("signature does not match the body (wrong secret or changed body)")
    current = time.time() if now is None else now
    age = current - timestamp
    if abs(age) > tolerance_seconds:
        when = f"{int(age)} s old" if age > 0 else f"{int(-age)} s in the future"
        raise SignatureError(
            f"timestamp is {when}, outside the {tolerance_seconds} s tolerance (replay?)"
        )
    return timestamp


# --- Delivery -----------------------------------------------------------------------------------


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

    def out_of_time(rs: RetryCallState) -> bool:
        return time.monotonic() + rs.upcoming_sleep + 0.05 >= end

    attempts = 0
    latency: float | None = None
    code: int | None = None
    retrying = Retrying(
        stop=stop_after_attempt(policy.attempts_per_call) | out_of_time,
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


def since_default(lookback: timedelta = timedelta(days=1)) -> datetime:
    """Where event scans start without a cursor: a day back, so that switching webhooks on does
    not replay the whole history."""
    return _now() - lookback
