"""Signed alerts: events sent as JSON to webhook endpoints, signed with HMAC-SHA256, retried with
backoff, every delivery logged in `webhook_deliveries`.

`events` builds the events, `signing` signs requests and lets receivers verify them
(`verify_signature`), `endpoints` holds where alerts go and the delivery policy, and `delivery`
sends them and records every attempt.
"""

from dynamic_assets.alerts.delivery import (
    USER_AGENT,
    DeliveryResult,
    deliver,
    deliver_due,
    dispatch,
    enqueue,
    send_with_retries,
)
from dynamic_assets.alerts.endpoints import (
    DeliveryPolicy,
    WebhookConfig,
    WebhookConfigError,
    endpoint_hash,
    endpoint_label,
    parse_endpoints,
)
from dynamic_assets.alerts.events import (
    EVENT_TYPES,
    MAX_DETAIL,
    WITHHELD,
    Event,
    attestation_confirmed_event,
    attestation_events,
    detail,
    quarantined_events,
    since_default,
    stale_events,
)
from dynamic_assets.alerts.signing import (
    DEFAULT_TOLERANCE_SECONDS,
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    SignatureError,
    body_of,
    sign,
    signature_header,
    verify_signature,
)

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "EVENT_TYPES",
    "MAX_DETAIL",
    "SIGNATURE_HEADER",
    "USER_AGENT",
    "WITHHELD",
    "DeliveryPolicy",
    "DeliveryResult",
    "Event",
    "SignatureError",
    "WebhookConfig",
    "WebhookConfigError",
    "attestation_confirmed_event",
    "attestation_events",
    "body_of",
    "deliver",
    "deliver_due",
    "detail",
    "dispatch",
    "endpoint_hash",
    "endpoint_label",
    "enqueue",
    "parse_endpoints",
    "quarantined_events",
    "send_with_retries",
    "sign",
    "signature_header",
    "since_default",
    "stale_events",
    "verify_signature",
]
