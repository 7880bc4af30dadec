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


class PromotionError(Exception):
    """Staged rows that cannot become curated rows (bad casts, nulls, duplicate keys)."""

    def __init__(self, message: str, problems: list[dict] | None = None):
        self.problems = problems or []
        super().__init__(message)
