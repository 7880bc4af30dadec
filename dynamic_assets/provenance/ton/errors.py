"""The errors of TON anchoring."""

from __future__ import annotations


class TonError(RuntimeError):
    """TON anchoring failed; the message says which step and why (never a secret)."""


class TonApiError(TonError):
    """toncenter answered with an error, or not with API v2's JSON shape."""
