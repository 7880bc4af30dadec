"""The webhook resource: endpoints and signing secret, given as environment variables."""

from __future__ import annotations

from dataclasses import replace

import dagster as dg
from pydantic import Field

from dynamic_assets.alerts.endpoints import DeliveryPolicy, WebhookConfig, parse_endpoints
from dynamic_assets.settings import Settings


def _value(v: str | None) -> str | None:
    return v.get_value() if isinstance(v, dg.EnvVar) else v


class WebhookResource(dg.ConfigurableResource):
    """Where alerts go and the secret that signs them. Both are given as `dg.EnvVar`s: the URLs
    because they may carry tokens, the secret because it is one; neither is ever logged."""

    urls: str | None = Field(
        default=None,
        description="Comma-separated http(s) endpoints (DYNAMIC_ASSETS_WEBHOOK_URLS, as an EnvVar).",
    )
    secret: str | None = Field(
        default=None,
        description="HMAC-SHA256 signing secret (DYNAMIC_ASSETS_WEBHOOK_SECRET, as an EnvVar).",
    )
    connect_timeout: float = Field(default=3.0, description="Seconds to connect to an endpoint.")
    read_timeout: float = Field(default=5.0, description="Seconds to wait for its response.")
    attempts_per_call: int = Field(default=3, description="Attempts per delivery per sensor pass.")
    call_seconds: float = Field(default=15.0, description="Time bound of one delivery's attempts.")
    max_attempts: int = Field(default=12, description="Attempts in all before a delivery fails.")
    budget_seconds: float = Field(
        default=30.0, description="Time a sensor tick may spend delivering (ticks have 60 s)."
    )
    run_budget_seconds: float = Field(
        default=10.0,
        description="Time a `dynamic-assets run` may spend delivering a failed run's alerts: one "
        "attempt per delivery, an endpoint that fails is left to the alerts sensor.",
    )

    def run_config(self) -> WebhookConfig | None:
        """`config()` for a run that waits on its alerts: one attempt per delivery, within one
        connect and one read timeout."""
        config = self.config()
        if config is None:
            return None
        policy = replace(
            config.policy,
            attempts_per_call=1,
            call_seconds=self.connect_timeout + self.read_timeout,
        )
        return replace(config, policy=policy)

    def config(self) -> WebhookConfig | None:
        """The endpoints, secret and policy; None when no endpoint is configured.

        Raises `WebhookConfigError` (no URL or secret in its message) when endpoints are set but
        the secret is not, or an entry is not an http(s) URL."""
        endpoints = parse_endpoints(_value(self.urls))
        if not endpoints:
            return None
        return WebhookConfig(
            endpoints,
            _value(self.secret) or "",
            DeliveryPolicy(
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
                attempts_per_call=self.attempts_per_call,
                call_seconds=self.call_seconds,
                max_attempts=self.max_attempts,
            ),
        )


def build_webhook_resource(settings: Settings) -> WebhookResource:
    """The resource from the settings: the URLs and secret as EnvVars, only when set."""
    w = settings.webhooks
    return WebhookResource(
        urls=dg.EnvVar("DYNAMIC_ASSETS_WEBHOOK_URLS") if w.urls_set else None,
        secret=dg.EnvVar("DYNAMIC_ASSETS_WEBHOOK_SECRET") if w.secret_set else None,
        connect_timeout=w.connect_timeout,
        read_timeout=w.read_timeout,
    )
