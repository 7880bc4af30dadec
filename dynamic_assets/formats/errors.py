"""Refusals of source files: `LoadError` names the file, the line or row, and the reason.

A refusal comes in two parts: the reason, in the loader's own words (it never quotes the file),
and the detail, what a parser or the database said about the offending text (which may quote
it). For a file of a dataset declared sensitive the detail, and any text a reason would take
from the file, is withheld (`WITHHELD`); the file, the line or row and the reason remain. The
readers are told whether the dataset is sensitive, so no message ever holds such a value.

The subclasses mark the refusals whose details a caller words for its own audience (the
`declare` command words them for a person choosing a declaration)."""

from __future__ import annotations

from typing import Any

from dynamic_assets.declarations.model import WITHHELD


def shown(text: str, sensitive: bool) -> str:
    """Text taken from a file as a message may show it: `WITHHELD` for a sensitive dataset."""
    return WITHHELD if sensitive else text


def one_line(text: object) -> str:
    """A parser's message on one line (messages name one problem a line)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return " ".join(str(text).split())


class LoadError(Exception):
    """A source file that cannot be loaded: names the file, the line or row, and the reason.

    `detail` is what a parser or the database said (it may quote the file); with `sensitive`
    it is neither kept nor shown: the message says it is withheld."""

    def __init__(
        self,
        path: str,
        reason: str,
        *,
        line: int | None = None,
        row: int | None = None,
        detail: str | None = None,
        sensitive: bool = False,
    ):
        self.path = path
        self.reason = reason
        self.line = line
        self.row = row
        # A sensitive file's detail is not kept at all, so no caller can show it.
        self.withheld = sensitive and detail is not None
        self.detail = None if detail is None or sensitive else one_line(detail)
        super().__init__(self.message)

    @property
    def explained(self) -> str:
        """The reason with the detail (or `WITHHELD` in its place)."""
        if self.withheld:
            return f"{self.reason} {WITHHELD}"
        if self.detail is None:
            return self.reason
        return f"{self.reason} ({self.detail})"

    @property
    def located(self) -> str:
        """The reason with its line or row, without the path."""
        if self.line is not None:
            return f"line {self.line}: {self.explained}"
        if self.row is not None:
            return f"row {self.row}: {self.explained}"
        return self.explained

    @property
    def message(self) -> str:
        return f"{self.path}: {self.located}"


def column_difference(
    present: list[str], names: list[str], *, sensitive: bool = False
) -> str | None:
    """`missing declared column(s) ...; undeclared column(s) ...`, or None when the sets agree.

    With `sensitive`, the undeclared names (read from the file: a CSV file without a header row
    gives its first record) are withheld."""
    missing = [n for n in names if n not in present]
    extra = [n for n in present if n not in names]
    parts = []
    if missing:
        parts.append(f"missing declared column(s) {', '.join(missing)}")
    if extra:
        parts.append(f"undeclared column(s) {shown(', '.join(extra), sensitive)}")
    return "; ".join(parts) or None


class DuplicateColumns(LoadError):
    """A CSV header that names columns twice (`names`, sorted)."""

    def __init__(self, path: str, names: list[str], *, sensitive: bool = False):
        self.names = names
        super().__init__(
            path,
            f"the header names column(s) twice: {shown(', '.join(names), sensitive)}",
            line=1,
            sensitive=sensitive,
        )


class MalformedCsv(LoadError):
    """A CSV record that does not parse (wrong field count, a quote never closed, ...)."""


class NotAnObject(LoadError):
    """A JSON record (a line, or an item of the top-level array) that is not an object."""

    def __init__(self, path: str, reason: str, value: Any, *, sensitive: bool = False, **where):
        self.value = value
        super().__init__(path, reason, sensitive=sensitive, **where)


class BrokenJsonArray(LoadError):
    """A JSON array that stops being valid JSON (or UTF-8) after `items` good items; `detail` is
    the parser's message."""

    def __init__(self, path: str, reason: str, items: int, detail: str, *, sensitive: bool = False):
        self.items = items
        super().__init__(path, reason, row=items + 1, detail=detail, sensitive=sensitive)
