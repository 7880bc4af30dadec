"""The rich consoles the commands print with: results on stdout, problems on stderr, both wide
enough for the summary tables when the output is a file or a pipe (CI logs, scripts)."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

console = Console(stderr=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def print_titled(title: str, table: Table) -> None:
    """A table under its title, the title a line of its own: a path in it is never broken."""
    console.print(title, style="italic", markup=False, highlight=False, soft_wrap=True)
    console.print(table)
