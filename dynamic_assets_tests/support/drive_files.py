"""Files in a drive folder as a collaborator leaves them: sample files written by name, and the
small edits a test makes to a file already there (a line, one CSV cell, a later modified time)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def write_file(folder: Path, name: str, data: bytes | str | pa.Table) -> Path:
    """`data` written to `folder/name`: text as UTF-8, bytes as given, an Arrow table as Parquet."""
    path = folder / name
    if isinstance(data, pa.Table):
        pq.write_table(data, path)
    else:
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def edit_line(path: Path, index: int, change: Callable[[str], str]) -> None:
    """Line `index` of a UTF-8 text file (0 is the first) replaced by `change(line)`; the line
    is passed with its line end."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[index] = change(lines[index])
    path.write_text("".join(lines), encoding="utf-8")


def edit_cell(path: Path, index: int, column: int, change: Callable[[str], str]) -> None:
    """Cell `column` (0 is the first) of line `index` of a CSV file replaced by `change(cell)`."""

    def change_cell(line: str) -> str:
        cells = line.split(",")
        cells[column] = change(cells[column])
        return ",".join(cells)

    edit_line(path, index, change_cell)


def touch_later(path: Path, seconds: float = 5) -> None:
    """The file's access and modified times set `seconds` ahead, so that a listing sees a change
    even when the edit falls within the file system's time resolution."""
    later = time.time() + seconds
    os.utime(path, (later, later))
