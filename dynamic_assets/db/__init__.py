"""Postgres access: the embedded server, connections and versioned migrations."""

from dynamic_assets.db.connection import Database, redact_url

__all__ = ["Database", "redact_url"]
