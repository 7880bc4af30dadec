"""The signature of a webhook request, and how receivers check it.

Each request is a POST of the event as compact JSON (UTF-8) with the headers

    Content-Type: application/json
    X-Dynamic-Assets-Event: run.failed
    X-Dynamic-Assets-Delivery: <uuid of this (event, endpoint) delivery; the same on every retry>
    X-Dynamic-Assets-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>

Receivers check it with `verify_signature(secret, header, raw_body)`: the HMAC must match and
`t` must be within `tolerance_seconds` (default 300 s) of the receiver's clock, so a captured
request cannot be replayed later; a retry is signed again with a fresh `t`. Receivers should
deduplicate on the event's `id` (a retry after a lost response sends the same event again).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

SIGNATURE_HEADER = "X-Dynamic-Assets-Signature"
EVENT_HEADER = "X-Dynamic-Assets-Event"
DELIVERY_HEADER = "X-Dynamic-Assets-Delivery"
DEFAULT_TOLERANCE_SECONDS = 300


def body_of(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes sent (and signed): compact JSON, keys sorted, UTF-8."""
    return json.dumps(
        payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=str
    ).encode("utf-8")


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
