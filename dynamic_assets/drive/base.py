from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class DriveItem:
    """A file or folder in the drive, as listed (no content read)."""

    item_id: str
    path: str
    name: str
    is_folder: bool
    size: int
    modified_at: datetime
    etag: str
    ctag: str | None = None
    hashes: dict[str, str] = field(default_factory=dict)
    modified_by: str | None = None

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.path.split("/"))


class Listing(Protocol):
    """Items of a drive below a folder: what classifying dataset folders needs."""

    def list_tree(self, folder: str) -> Iterator[DriveItem]:
        """Every file and folder below `folder` (recursive), by listing only."""
        ...


class Drive(Listing, Protocol):
    """What the pipeline needs of a drive."""

    kind: str

    def stat(self, path: str) -> DriveItem:
        """The file or folder at `path`, as listed."""
        ...

    def open(self, path: str) -> io.BufferedReader:
        """The file's bytes as a stream (read in chunks; never loaded whole)."""
        ...

    def write_bytes(self, path: str, data: bytes, *, overwrite: bool = False) -> DriveItem:
        """Write a file; refuse to replace an existing one unless `overwrite`."""
        ...

    def describe(self) -> str: ...
