"""Refusals of curated promotion."""

from __future__ import annotations


class PromotionError(Exception):
    """Staged rows that cannot become curated rows (bad casts, nulls, duplicate keys)."""

    def __init__(self, message: str, problems: list[dict] | None = None):
        self.problems = problems or []
        super().__init__(message)
