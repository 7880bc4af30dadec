"""Refusals of source files: `LoadError` names the file, the line or row, and the reason.

The subclasses mark the refusals whose details a caller words for its own audience (the
`declare` command words them for a person choosing a declaration)."""

from __future__ import annotations

from typing import Any


class LoadError(Exception):
    """A source file that cannot be loaded: names the file, the line or row, and the reason."""

    def __init__(self, path: str, reason: str, *, line: int | None = None, row: int | None = None):
        self.path = path
        self.reason = reason
        self.line = line
        self.row = row
        super().__init__(self.message)

    @property
    def located(self) -> str:
        """The reason with its line or row, without the path."""
        if self.line is not None:
            return f"line {self.line}: {self.reason}"
        if self.row is not None:
            return f"row {self.row}: {self.reason}"
        return self.reason

    @property
    def message(self) -> str:
        return f"{self.path}: {self.located}"


def column_difference(present: list[str], names: list[str]) -> str | None:
    """`missing declared column(s) ...; undeclared column(s) ...`, or None when the sets agree."""
    missing = [n for n in names if n not in present]
    extra = [n for n in present if n not in names]
    parts = []
    if missing:
        parts.append(f"missing declared column(s) {', '.join(missing)}")
    if extra:
        parts.append(f"undeclared column(s) {', '.join(extra)}")
    return "; ".join(parts) or None


class DuplicateColumns(LoadError):
    """A CSV header that names columns twice (`names`, sorted)."""

    def __init__(self, path: str, names: list[str]):
        self.names = names
        super().__init__(path, f"the header names column(s) twice: {', '.join(names)}", line=1)


class MalformedCsv(LoadError):
    """A CSV record that does not parse (wrong field count, a quote never closed, ...)."""


class NotAnObject(LoadError):
    """A JSON record (a line, or an item of the top-level array) that is not an object."""

    def __init__(self, path: str, reason: str, value: Any, **where: int):
        self.value = value
        super().__init__(path, reason, **where)


class BrokenJsonArray(LoadError):
    """A JSON array that stops being valid JSON (or UTF-8) after `items` good items."""

    def __init__(self, path: str, reason: str, items: int, detail: str):
        self.items = items
        self.detail = detail
        super().__init__(path, reason, row=items + 1)
