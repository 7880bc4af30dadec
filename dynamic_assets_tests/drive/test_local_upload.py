"""The local drive's upload: streamed in chunks into a temporary file beside the target, renamed
into place only when the whole stream was read; a source failing midway leaves no file."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from dynamic_assets.drive.local import LocalDrive
from dynamic_assets.lifecycle.archive import ArchiveError, archive_version

SIZE = 5 * 1024 * 1024 + 123


class Source(io.RawIOBase):
    """`data` handed out as asked; refuses a read of everything at once (or of more than
    `largest`), and fails with OSError once `fail_at` bytes were read."""

    def __init__(self, data: bytes, *, fail_at: int | None = None, largest: int = 8 << 20):
        self.data, self.pos, self.fail_at, self.largest = data, 0, fail_at, largest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = len(buffer)
        assert 0 < n <= self.largest, f"a read of {n} bytes: the stream is not read in chunks"
        if self.fail_at is not None and self.pos + n > self.fail_at:
            raise OSError("the source went away")
        chunk = self.data[self.pos : self.pos + n]
        buffer[: len(chunk)] = chunk
        self.pos += len(chunk)
        return len(chunk)

    def read(self, size: int = -1) -> bytes:
        assert size is not None and size > 0, "the whole stream read at once"
        return super().read(size)


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_upload_streams_the_same_bytes(tmp_path):
    data = os.urandom(SIZE)
    drive = LocalDrive(tmp_path)
    item = drive.upload("archive/a/file.bin", Source(data, largest=4 << 20), SIZE, overwrite=False)
    written = (tmp_path / "archive/a/file.bin").read_bytes()
    assert hashlib.sha256(written).digest() == hashlib.sha256(data).digest()
    assert item.size == SIZE and item.path == "archive/a/file.bin"
    assert _files(tmp_path / "archive/a") == ["file.bin"]
    with pytest.raises(FileExistsError):
        drive.upload("archive/a/file.bin", Source(data), SIZE)


def test_a_source_failing_midway_leaves_no_partial_file(tmp_path):
    drive = LocalDrive(tmp_path)
    old = os.urandom(1000)
    drive.upload("archive/a/file.bin", io.BytesIO(old), len(old))
    with pytest.raises(OSError, match="went away"):
        drive.upload(
            "archive/a/file.bin", Source(os.urandom(SIZE), fail_at=3 << 20), SIZE, overwrite=True
        )
    assert _files(tmp_path / "archive/a") == ["file.bin"]
    assert (tmp_path / "archive/a/file.bin").read_bytes() == old  # the previous file kept
    with pytest.raises(OSError, match="went away"):
        drive.upload("archive/b/new.bin", Source(os.urandom(SIZE), fail_at=1 << 20), SIZE)
    assert _files(tmp_path / "archive/b") == []


def test_a_stream_shorter_than_announced_is_refused(tmp_path):
    drive = LocalDrive(tmp_path)
    with pytest.raises(OSError, match="1000 of 2000 bytes"):
        drive.upload("archive/a/file.bin", io.BytesIO(b"x" * 1000), 2000)
    assert _files(tmp_path / "archive/a") == []


class FailingMidway:
    """A stream that fails once more than `limit` bytes were asked of it."""

    def __init__(self, stream, limit: int):
        self.stream, self.limit, self.read_bytes = stream, limit, 0

    def read(self, size: int = -1) -> bytes:
        assert size > 0, "the whole stream read at once"
        self.read_bytes += size
        if self.read_bytes > self.limit:
            raise OSError("the spool went away")
        return self.stream.read(size)


class FlakyDrive(LocalDrive):
    def upload(self, path, stream, size, *, overwrite=False):
        return super().upload(path, FailingMidway(stream, size // 2), size, overwrite=overwrite)


def test_archive_upload_failing_midway_keeps_the_version_in_core(db, drive, drive_root, decls):
    from dynamic_assets.db.tables import CURATED_SCHEMA, partition_exists, partition_name
    from dynamic_assets_tests.support.staging import curate_and_fingerprint

    curate_and_fingerprint(db, drive, decls, "market", "2024-06-01")
    with pytest.raises(ArchiveError, match=r"market 2024-06-01 \(archive tier\): uploading"):
        archive_version(db, FlakyDrive(drive_root), "archive", "market", "2024-06-01")
    assert not [p for p in (drive_root / "archive").rglob("*") if p.is_file()]
    with db.connect() as conn:
        assert partition_exists(conn, CURATED_SCHEMA, partition_name("market", "2024-06-01"))
    done = archive_version(db, drive, "archive", "market", "2024-06-01")
    assert done is not None and (drive_root / done.path).stat().st_size == done.size_bytes
