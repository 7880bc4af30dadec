"""The rich consoles the commands print with: results on stdout, problems on stderr, both wide
enough for the summary tables when the output is a file or a pipe (CI logs, scripts)."""

from __future__ import annotations

import sys

from rich.console import Console

console = Console(stderr=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
