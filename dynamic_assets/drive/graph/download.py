"""Verified, resumable downloads from the drive.

`Downloads.open(path)` returns a buffered stream that downloads in ranges with bounded memory,
resumes a dropped connection with a `Range` request, and when the last byte arrives checks the
size and every hash Graph reported (`quickXorHash`, `sha256Hash`, `sha1Hash`); a mismatch raises
`ContentMismatch` (a `LoadError` naming the path), so a COPY reading the stream aborts and nothing
from the file becomes visible. At most `max_parallel` downloads are open at once.
"""

from __future__ import annotations

import hashlib
import io
import threading
from typing import NoReturn

import requests

from dynamic_assets.drive.graph.http import (
    TRANSFER_ERRORS,
    GraphError,
    GraphHttp,
    Transient,
    graph_error,
)
from dynamic_assets.drive.graph.items import DriveAddress, reported_hashes
from dynamic_assets.drive.graph.quickxor import QuickXorHash
from dynamic_assets.formats.errors import LoadError

READ_CHUNK = 1 << 20
SKIP_AHEAD = 256 << 10  # a forward seek up to this far reads on instead of a new request


class ContentMismatch(LoadError):
    """The downloaded bytes differ from what Graph reported (size or hash)."""


class Downloads:
    """Opens files of one drive for reading, at most `max_parallel` at once."""

    def __init__(self, http: GraphHttp, address: DriveAddress, max_parallel: int) -> None:
        self.http = http
        self.address = address
        self.max_parallel = max_parallel
        self.slots = threading.BoundedSemaphore(max_parallel)

    def open(self, path: str) -> io.BufferedReader:
        """The file's bytes as a buffered stream: downloaded in ranges, resumed after a dropped
        connection, and checked against Graph's size and hashes when the last byte arrives."""
        js = self.http.get_json(self.address.path_url(path))
        if "file" not in js:
            raise IsADirectoryError(f"{path} is a folder in the drive, not a file")
        raw = GraphDownload(self, path.strip("/"), js)
        return io.BufferedReader(raw, buffer_size=READ_CHUNK)

    def response(self, download: GraphDownload, start: int) -> requests.Response:
        """A streaming response with the file's bytes from `start`: from the pre-authenticated
        download URL (asked for again once when it has expired), else from `/content`."""
        headers = {"Accept-Encoding": "identity"}
        if start:
            headers["Range"] = f"bytes={start}-"
        for fresh in (False, True):
            url = download.download_url
            if url:
                resp = self.http.request(
                    "GET",
                    url,
                    auth=False,
                    headers=headers,
                    stream=True,
                    expect=(200, 206, 401, 403, 404, 410),
                )
                if resp.status_code in (401, 403, 404, 410) and not fresh:
                    # The pre-authenticated URL expired (they last about an hour): ask for a new one.
                    resp.close()
                    download.refresh_url()
                    continue
                if resp.status_code >= 400:
                    code, message = graph_error(resp)
                    resp.close()
                    raise GraphError(
                        f"{download.path}: download refused (HTTP {resp.status_code} {code or ''}) {message}".rstrip(),
                        status=resp.status_code,
                        code=code,
                    )
            else:
                resp = self.http.request(
                    "GET",
                    self.address.item_url(download.item_id) + "/content",
                    headers=headers,
                    stream=True,
                    expect=(200, 206),
                )
            return resp
        raise GraphError(f"{download.path}: no download URL could be had")


class GraphDownload(io.RawIOBase):
    """A file in the drive as a raw, seekable byte stream (use it through `io.BufferedReader`).

    Sequential reads are one streaming GET; a dropped connection resumes with `Range` from the
    current position (bounded, with backoff). While every byte has been read in order, the bytes
    are hashed; when the last one arrives the size and the hashes Graph reported are compared and
    `ContentMismatch` is raised on a difference. Random access (Parquet footers) opens a ranged
    request per jump; such a stream is checked by the caller's sequential pass instead.
    """

    def __init__(self, downloads: Downloads, path: str, item: dict) -> None:
        super().__init__()
        self._downloads = downloads
        self._http = downloads.http
        self.path = path
        self.item_id = str(item["id"])
        self.size = int(item.get("size") or 0)
        self.expected = reported_hashes(item)
        self.download_url: str | None = item.get("@microsoft.graph.downloadUrl")
        self._resp: requests.Response | None = None
        self._holding_slot = False
        self._pos = 0
        self._hashed = 0  # bytes hashed in order from the start
        self._in_order = True
        self._qx = QuickXorHash() if "quickXorHash" in self.expected else None
        self._sha256 = hashlib.sha256() if "sha256Hash" in self.expected else None
        self._sha1 = hashlib.sha1() if "sha1Hash" in self.expected else None
        self.verified = False
        self.resumes = 0

    # -- io.RawIOBase

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._pos + offset
        elif whence == io.SEEK_END:
            target = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if target < 0:
            raise ValueError(f"{self.path}: negative seek position {target}")
        if target != self._pos:
            if (
                self._resp is not None
                and self._pos < target <= self._pos + SKIP_AHEAD
                and self._in_order
            ):
                while self._pos < target:  # read on: cheaper than a new request
                    if not self._read_some(min(READ_CHUNK, target - self._pos)):
                        break
            else:
                self._drop()
                self._pos = target
        return self._pos

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        if not len(view):
            return 0
        data = self._read_some(len(view))
        n = len(data)
        view[:n] = data
        return n

    def close(self) -> None:
        self._drop()
        super().close()

    # -- transfer

    def refresh_url(self) -> None:
        """Ask Graph for a new pre-authenticated download URL (the old one expired)."""
        js = self._http.get_json(self._downloads.address.item_url(self.item_id))
        self.download_url = js.get("@microsoft.graph.downloadUrl")

    def _open(self) -> requests.Response:
        if not self._holding_slot:
            if not self._downloads.slots.acquire(timeout=600):
                raise GraphError(
                    f"{self.path}: waited 10 minutes for a download slot "
                    f"({self._downloads.max_parallel} downloads already open)"
                )
            self._holding_slot = True
        try:
            resp = self._downloads.response(self, self._pos)
        except BaseException:
            self._release()
            raise
        if self._pos and resp.status_code == 200:
            # The server ignored Range: skip what was already delivered.
            skip = self._pos
            while skip:
                chunk = resp.raw.read(min(skip, READ_CHUNK), decode_content=False)
                if not chunk:
                    resp.close()
                    self._release()
                    raise Transient(
                        f"{self.path}: connection closed while skipping to byte {self._pos:,}"
                    )
                skip -= len(chunk)
        elif resp.status_code == 206:
            content_range = resp.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {self._pos}-"):
                resp.close()
                self._release()
                raise GraphError(
                    f"{self.path}: asked for bytes from {self._pos:,}, got {content_range or 'no range'}"
                )
        self._resp = resp
        return resp

    def _drop(self) -> None:
        if self._resp is not None:
            self._resp.close()
            self._resp = None
        self._release()

    def _release(self) -> None:
        if self._holding_slot:
            self._holding_slot = False
            self._downloads.slots.release()

    def _read_some(self, n: int) -> bytes:
        """Up to `n` bytes from the current position; b"" at the end (after checking the file)."""
        if self._pos >= self.size:
            if self._resp is not None and self._in_order and self._hashed == self.size:
                try:
                    extra = self._resp.raw.read(1, decode_content=False)
                except TRANSFER_ERRORS:
                    extra = b""
                if extra:
                    self._drop()
                    raise ContentMismatch(
                        self.path,
                        f"the download is longer than the {self.size:,} bytes Graph reported; "
                        "nothing from the file was kept",
                    )
            self._finish_in_order()
            self._drop()
            return b""
        n = min(n, self.size - self._pos)
        data = b""
        try:
            for attempt in self._http.retrying():
                with attempt:
                    data = self._fetch(n)
        except Transient as exc:
            raise GraphError(
                f"{exc.what} (gave up after {self._http.max_attempts} attempts)"
            ) from None
        if self._in_order and self._pos == self._hashed:
            for h in (self._qx, self._sha256, self._sha1):
                if h is not None:
                    h.update(data)
            self._hashed += len(data)
        elif self._pos != self._hashed:
            self._in_order = False
        self._pos += len(data)
        if self._pos >= self.size:
            self._finish_in_order()
        return data

    def _fetch(self, n: int) -> bytes:
        """One read from the open response (opened at the current position if needed)."""
        resp = self._resp if self._resp is not None else self._open()
        try:
            data = resp.raw.read(n, decode_content=False)
        except TRANSFER_ERRORS as exc:
            self._lost(f"connection lost at byte {self._pos:,} ({type(exc).__name__})")
        if not data:
            self._lost(f"connection closed at byte {self._pos:,} of {self.size:,}")
        return data

    def _lost(self, what: str) -> NoReturn:
        self._drop()
        self.resumes += 1
        self._http.stats["resumes"] += 1
        raise Transient(f"{self.path}: {what}; resuming with a Range request")

    def _finish_in_order(self) -> None:
        if self.verified or not self._in_order or self._hashed != self._pos:
            return
        if self._hashed != self.size:
            return
        problems = []
        checks = (
            ("quickXorHash", self._qx, lambda h: h.b64digest()),
            ("sha256Hash", self._sha256, lambda h: h.hexdigest()),
            ("sha1Hash", self._sha1, lambda h: h.hexdigest()),
        )
        for key, h, show in checks:
            if h is None:
                continue
            got = show(h)
            want = self.expected[key]
            same = got == want if key == "quickXorHash" else got.lower() == want.lower()
            if not same:
                problems.append(f"{key} is {got}, Graph reported {want}")
        if problems:
            self._drop()
            raise ContentMismatch(
                self.path,
                "the downloaded bytes do not match the drive's record ("
                + "; ".join(problems)
                + "); nothing from the file was kept",
            )
        self.verified = True
