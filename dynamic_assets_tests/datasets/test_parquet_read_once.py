"""A Parquet file is read from the drive once: one open and its bytes once from the local drive,
one download from OneDrive; the SHA-256 recorded for it is still that of the whole file."""

from __future__ import annotations

import hashlib
import io

import pytest

from dynamic_assets.datasets.pipeline import stage
from dynamic_assets.drive import LocalDrive
from dynamic_assets_tests.support.graph_server import seed_from_folder, serve
from dynamic_assets_tests.support.onedrive import ROOT, graph_drive

VERSION = "v2.3"
PATH = f"datasets/embeddings/{VERSION}/items.parquet"


class Counted(io.RawIOBase):
    """A drive stream that adds what is read through it to its drive's count."""

    def __init__(self, inner, drive: CountingDrive):
        self.inner, self.drive = inner, drive

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self.inner.seekable()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self.inner.seek(offset, whence)

    def tell(self) -> int:
        return self.inner.tell()

    def readinto(self, buffer) -> int:
        n = self.inner.readinto(buffer)
        self.drive.bytes_read += n or 0
        return n

    def close(self) -> None:
        self.inner.close()
        super().close()


class CountingDrive(LocalDrive):
    """The local drive, counting the opens of and the bytes read from each file."""

    def __init__(self, root):
        super().__init__(root)
        self.opens: list[str] = []
        self.bytes_read = 0

    def open(self, path: str) -> io.BufferedReader:
        self.opens.append(path)
        return io.BufferedReader(Counted(super().open(path), self))


def test_a_parquet_file_is_opened_and_read_once_and_hashed_whole(db, decls, drive_root):
    drive = CountingDrive(drive_root)
    ds = decls.by_name()["embeddings"]
    staged = stage(db, drive, decls, ds, VERSION)
    data = (drive_root / PATH).read_bytes()
    (load,) = [f for f in staged.loads if f.path == PATH]
    assert load.rows > 0
    assert drive.opens.count(PATH) == 1, drive.opens
    assert drive.bytes_read == len(data)
    assert load.sha256 == hashlib.sha256(data).hexdigest()
    assert load.bytes == len(data)


@pytest.fixture
def graph(tmp_path, monkeypatch, drive_root):
    with serve(tmp_path, monkeypatch) as srv:
        seed_from_folder(srv, drive_root, ROOT)
        yield srv, graph_drive(srv)


def test_a_parquet_file_is_downloaded_once_from_onedrive(graph, db, decls, drive_root):
    srv, drive = graph
    ds = decls.by_name()["embeddings"]
    before = len(srv.requests("GET", "/download/"))
    staged = stage(db, drive, decls, ds, VERSION)
    downloads = srv.requests("GET", "/download/")[before:]
    data = (drive_root / PATH).read_bytes()
    (load,) = [f for f in staged.loads if f.path == PATH]
    assert len(downloads) == 1, [d["range"] for d in downloads]
    assert downloads[0]["range"] in (None, "bytes=0-")
    assert load.sha256 == hashlib.sha256(data).hexdigest()
