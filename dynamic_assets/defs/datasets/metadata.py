"""Small Markdown renderings for asset metadata, so the UI answers first questions without a query."""

from __future__ import annotations

from collections.abc import Sequence


def _cell(value: object, limit: int = 60) -> str:
    text = "" if value is None else str(value)
    text = text.replace("\n", "⏎").replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def md_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "| " + " | ".join(_cell(c) for c in columns) + " |"
    sep = "|" + "---|" * len(columns)
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join([head, sep, *body])
