"""A local folder with the OneDrive layout: the embedded default drive."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from hashlib import sha1
from operator import attrgetter
from pathlib import Path
from typing import BinaryIO

from dynamic_assets.declarations.names import listed_name
from dynamic_assets.drive.base import DriveItem

CHUNK = 1024 * 1024
_name = attrgetter("name")


class LocalDrive:
    kind = "local"

    def __init__(self, root: Path | str):
        self.root = Path(root).absolute()

    def describe(self) -> str:
        return f"local drive at {self.root}"

    def _item(self, rel: str, entry: os.DirEntry | Path) -> DriveItem:
        if isinstance(entry, Path):
            return _item(rel, entry.stat(), entry.is_dir())
        return _item(rel, entry.stat(follow_symlinks=False), entry.is_dir(follow_symlinks=False))

    def list_tree(self, folder: str) -> Iterator[DriveItem]:
        base = self.root / folder
        if not base.is_dir():
            return
        stack = [(str(base), folder.strip("/"))]
        while stack:
            current, rel = stack.pop()
            try:
                with os.scandir(current) as it:
                    entries = sorted(it, key=_name)
            except OSError:
                continue
            prefix = f"{rel}/" if rel else ""
            for entry in entries:
                if entry.is_symlink():
                    continue  # never follow links out of the drive
                name = entry.name
                if not name.isascii():
                    name = listed_name(name)
                child_rel = prefix + name
                is_folder = entry.is_dir(follow_symlinks=False)
                st = entry.stat(follow_symlinks=False)
                if name is entry.name:
                    yield _item(child_rel, st, is_folder, name)
                else:  # its identity stays its bytes
                    raw = os.fsdecode(os.path.relpath(entry.path, self.root))
                    yield _item(child_rel, st, is_folder, name, identity=raw)
                if is_folder:
                    stack.append((entry.path, child_rel))

    def _resolve(self, path: str) -> Path:
        target = (self.root / path).resolve()
        if not target.is_relative_to(self.root.resolve()):
            raise ValueError(f"{path!r} points outside the drive")
        return target

    def open(self, path: str) -> io.BufferedReader:
        return open(self._resolve(path), "rb")  # noqa: SIM115 - the caller closes the stream

    def stat(self, path: str) -> DriveItem:
        return self._item(path, self._resolve(path))

    def write_bytes(self, path: str, data: bytes, *, overwrite: bool = False) -> DriveItem:
        target = self._resolve(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() and not overwrite:
            raise FileExistsError(f"{path} already exists in the drive")
        tmp = target.with_name(f".{target.name}.partial")
        tmp.write_bytes(data)
        tmp.replace(target)
        return self.stat(path)

    def upload(
        self, path: str, stream: BinaryIO, size: int, *, overwrite: bool = False
    ) -> DriveItem:
        """Write `size` bytes from `stream`, read in chunks into a temporary file beside the
        target (hidden, `.<name>.<random>.partial`), then renamed into place: the target is the
        whole stream or is left as it was (a stream that fails or ends early leaves no file)."""
        target = self._resolve(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() and not overwrite:
            raise FileExistsError(f"{path} already exists in the drive")
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                written = 0
                while chunk := stream.read(CHUNK):
                    out.write(chunk)
                    written += len(chunk)
                if written != size:
                    raise OSError(f"the stream for {path} held {written} of {size} bytes")
                out.flush()
                os.fsync(out.fileno())
            tmp.replace(target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return self.stat(path)

    def delete(self, path: str) -> None:
        """Remove a file (FileNotFoundError when it is not there)."""
        target = self._resolve(path)
        if target.is_dir():
            raise IsADirectoryError(f"{path} is a folder of the drive, not a file")
        target.unlink()


def _item(
    rel: str,
    st: os.stat_result,
    is_folder: bool,
    name: str | None = None,
    *,
    identity: str | None = None,
) -> DriveItem:
    """A file or folder of the local drive as listed. A local file has no drive item id: its path
    (`identity`: as the file system holds it, when `rel` is its listed form) is its identity,
    its size and modification time its eTag."""
    size = st.st_size
    return DriveItem(
        "local-" + sha1((identity or rel).encode("utf-8", "surrogateescape")).hexdigest()[:20],
        rel,
        rel.rsplit("/", 1)[-1] if name is None else name,
        is_folder,
        0 if is_folder else size,
        datetime.fromtimestamp(st.st_mtime, UTC),
        sha1(f"{size}:{st.st_mtime_ns}".encode()).hexdigest()[:16],
    )
