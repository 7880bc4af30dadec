from __future__ import annotations


class LoadError(Exception):
    """A source file that cannot be loaded: names the file, the line or row, and the reason."""

    def __init__(self, path: str, reason: str, *, line: int | None = None, row: int | None = None):
        self.path = path
        self.reason = reason
        self.line = line
        self.row = row
        super().__init__(self.message)

    @property
    def message(self) -> str:
        where = ""
        if self.line is not None:
            where = f" line {self.line}:"
        elif self.row is not None:
            where = f" row {self.row}:"
        return f"{self.path}:{where} {self.reason}"


class PromotionError(Exception):
    """Staged rows that cannot become curated rows (bad casts, nulls, duplicate keys)."""

    def __init__(self, message: str, problems: list[dict] | None = None):
        self.problems = problems or []
        super().__init__(message)
