"""Where alerts go: the endpoints (checked, and redacted for storage and logs), the signing
secret and the delivery policy."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit


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
