"""Uploads to the drive: a simple PUT up to 4 MiB, an upload session above it.

Session uploads send chunks of a multiple of 320 KiB (memory bounded by one chunk), resume from
`nextExpectedRanges` after a failed chunk, and carry `@microsoft.graph.conflictBehavior` = `fail`
unless overwriting is asked for. The upload URL carries a token, so it never appears in a message.
"""

from __future__ import annotations

import contextlib
import io
from typing import BinaryIO

import requests

from dynamic_assets.drive.base import DriveItem
from dynamic_assets.drive.graph.http import (
    GraphConflict,
    GraphError,
    GraphHttp,
    Transient,
    graph_error,
    retry_after,
)
from dynamic_assets.drive.graph.items import DriveAddress, item_from_json

SIMPLE_UPLOAD_LIMIT = 4 << 20
UPLOAD_UNIT = 320 * 1024  # upload session fragments must be a multiple of 320 KiB
DEFAULT_UPLOAD_CHUNK = 32 * UPLOAD_UNIT  # 10 MiB


def first_expected(ranges: list[str] | None) -> int | None:
    """The first byte an upload session still expects (`nextExpectedRanges`), None for none."""
    if not ranges:
        return None
    return int(str(ranges[0]).split("-", 1)[0])


class UploadState:
    """Where a session upload stands: the next byte to send, whether to ask the session first,
    and the last chunk read (resent without reading the source again)."""

    def __init__(self, path: str, stream: BinaryIO, size: int, offset: int) -> None:
        self.path = path
        self.stream = stream
        self.size = size
        self.offset = offset
        self.resync = False
        self._seekable = bool(getattr(stream, "seekable", lambda: False)())
        self._buffer_start = -1
        self._buffer = b""
        self._stream_pos = 0

    def read(self, start: int, length: int) -> bytes:
        """`length` bytes of the source from `start`."""
        if self._buffer_start <= start and start + length <= self._buffer_start + len(self._buffer):
            off = start - self._buffer_start
            return self._buffer[off : off + length]
        if self._seekable:
            self.stream.seek(start)
        elif start != self._stream_pos:
            raise GraphError(
                f"upload of {self.path}: cannot go back to byte {start:,} of a stream that does not seek"
            )
        data = self.stream.read(length)
        if len(data) != length:
            raise GraphError(
                f"upload of {self.path}: the source ended at byte {start + len(data):,}, expected {self.size:,}"
            )
        self._stream_pos = start + length
        self._buffer_start, self._buffer = start, data
        return data


class Uploads:
    """Writes files to one drive."""

    def __init__(self, http: GraphHttp, address: DriveAddress, chunk: int) -> None:
        if chunk <= 0 or chunk % UPLOAD_UNIT:
            raise ValueError(f"upload_chunk must be a multiple of {UPLOAD_UNIT} bytes (320 KiB)")
        self.http = http
        self.address = address
        self.chunk = chunk

    def write_bytes(self, path: str, data: bytes, *, overwrite: bool = False) -> DriveItem:
        """Write a file; refuse to replace an existing one unless `overwrite` (FileExistsError)."""
        if len(data) <= SIMPLE_UPLOAD_LIMIT:
            behaviour = "replace" if overwrite else "fail"
            url = (
                self.address.path_url(path, "content")
                + f"?@microsoft.graph.conflictBehavior={behaviour}"
            )
            try:
                resp = self.http.request(
                    "PUT",
                    url,
                    data=data,
                    headers={"Content-Type": "application/octet-stream"},
                    expect=(200, 201),
                )
            except GraphConflict:
                raise GraphConflict(f"{path} already exists in the drive", status=409) from None
            return item_from_json(resp.json(), path.strip("/"))
        return self.upload(path, io.BytesIO(data), len(data), overwrite=overwrite)

    def upload(
        self, path: str, stream: BinaryIO, size: int, *, overwrite: bool = False
    ) -> DriveItem:
        """Upload `size` bytes from `stream` through an upload session, chunk by chunk (memory
        bounded by one chunk). A failed chunk is resumed from the ranges the session still expects."""
        behaviour = "replace" if overwrite else "fail"
        try:
            session = self.http.request(
                "POST",
                self.address.path_url(path, "createUploadSession"),
                json={"item": {"@microsoft.graph.conflictBehavior": behaviour}},
                expect=(200,),
            ).json()
        except GraphConflict:
            raise GraphConflict(f"{path} already exists in the drive", status=409) from None
        upload_url = session["uploadUrl"]
        state = UploadState(
            path, stream, size, first_expected(session.get("nextExpectedRanges")) or 0
        )
        try:
            while True:
                result = None
                for attempt in self.http.retrying():
                    with attempt:
                        result = self._send_chunk(upload_url, state)
                if result is not None:
                    return item_from_json(result, path.strip("/"))
        except Transient as exc:
            self._cancel(upload_url)
            raise GraphError(
                f"upload of {path} failed at byte {state.offset:,} of {size:,}: {exc.what}",
                status=exc.status,
            ) from None
        except BaseException:
            self._cancel(upload_url)
            raise

    def _send_chunk(self, upload_url: str, state: UploadState) -> dict | None:
        """Send the next fragment; returns the driveItem when the upload is complete."""
        if state.resync:
            offset = self._session_offset(upload_url, state)
            state.resync = False
            self.http.stats["resumes"] += 1
            if offset is None:  # nothing missing: the last fragment did arrive
                return self.http.get_json(self.address.path_url(state.path))
            state.offset = offset
        start = state.offset
        length = min(self.chunk, state.size - start)
        chunk = state.read(start, length)
        headers = {
            "Content-Length": str(length),
            "Content-Range": f"bytes {start}-{start + length - 1}/{state.size}",
        }
        self.http.stats["requests"] += 1
        try:
            resp = self.http.session.put(
                upload_url, data=chunk, headers=headers, timeout=self.http.timeout
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            state.resync = True
            raise Transient(f"fragment at byte {start:,}: {type(exc).__name__}") from None
        status = resp.status_code
        if status == 202:
            expected = first_expected(resp.json().get("nextExpectedRanges"))
            state.offset = start + length if expected is None else expected
            return None
        if status in (200, 201):
            return resp.json()
        if status == 409:
            code, message = graph_error(resp)
            raise GraphConflict(
                f"{state.path} already exists in the drive ({code or 'conflict'})", status=409
            )
        if status in (416, 429) or status >= 500:
            state.resync = True
            raise Transient(
                f"fragment at byte {start:,}: HTTP {status}",
                status=status,
                retry_after=retry_after(resp),
            )
        if status == 404:
            raise GraphError(f"upload of {state.path}: the upload session expired", status=404)
        code, message = graph_error(resp)
        raise GraphError(
            f"upload of {state.path}: fragment at byte {start:,} refused: HTTP {status} {code or ''} {message}".rstrip(),
            status=status,
            code=code,
        )

    def _session_offset(self, upload_url: str, state: UploadState) -> int | None:
        """The first byte the session still expects (None: it has them all)."""
        try:
            resp = self.http.session.get(upload_url, timeout=self.http.timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            state.resync = True
            raise Transient(f"upload status: {type(exc).__name__}") from None
        if resp.status_code >= 500 or resp.status_code == 429:
            state.resync = True
            raise Transient(f"upload status: HTTP {resp.status_code}", status=resp.status_code)
        if resp.status_code == 404:
            raise GraphError(f"upload of {state.path}: the upload session expired", status=404)
        return first_expected(resp.json().get("nextExpectedRanges"))

    def _cancel(self, upload_url: str) -> None:
        with contextlib.suppress(requests.RequestException):
            self.http.session.delete(upload_url, timeout=self.http.timeout)
