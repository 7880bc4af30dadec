"""Hashing bytes while they stream past, so a file is read once for loading and fingerprinting."""

from __future__ import annotations

import hashlib
from typing import Any, Protocol


class ByteSource(Protocol):
    """A byte stream read by size, into a buffer or by line (`io.BufferedIOBase` and its kind)."""

    def read(self, size: int = -1, /) -> bytes: ...

    def readinto(self, buffer: bytearray | memoryview, /) -> int | None: ...

    def readline(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


class HashingReader:
    """A read-only byte stream that computes SHA-256 and counts bytes of what is read through it."""

    def __init__(self, raw: ByteSource, *, count: bytes | None = None):
        self._raw = raw
        self._sha = hashlib.sha256()
        self._count = count
        self.counted = 0  # occurrences of `count` (e.g. b'"' to find an unterminated CSV quote)
        self.bytes_read = 0
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        if data:
            self._sha.update(data)
            self.bytes_read += len(data)
            if self._count is not None:
                self.counted += data.count(self._count)
        return data

    def readinto(self, buf: bytearray | memoryview) -> int | None:
        n = self._raw.readinto(buf)
        if n:
            self._sha.update(memoryview(buf)[:n])
            self.bytes_read += n
        return n

    def readline(self, size: int = -1) -> bytes:
        data = self._raw.readline(size)
        if data:
            self._sha.update(data)
            self.bytes_read += len(data)
        return data

    def __iter__(self):
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def drain(self, chunk: int = 1 << 20) -> None:
        """Read what the parser left unread (trailing bytes), so the digest covers the whole file."""
        while self.read(chunk):
            pass

    def finish(self) -> tuple[str, int]:
        """Read what is left, close, and return (SHA-256 hex digest, bytes read)."""
        self.drain()
        self.close()
        return self.hexdigest(), self.bytes_read

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True
        self._raw.close()

    def hexdigest(self) -> str:
        return self._sha.hexdigest()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def sha256_stream(stream: Any, chunk: int = 1 << 20) -> tuple[str, int]:
    """SHA-256 (hex) and size of a whole byte stream, as fast as `hashlib.file_digest`.

    A regular file goes through `hashlib.file_digest` itself; a stream with `readinto` is read in
    `chunk`-byte pieces into one buffer; a stream with only `read` (an HTTP body) chunk by chunk.
    `verify --source` re-hashes source files with it.
    """
    if hasattr(stream, "fileno") and hasattr(stream, "readinto"):
        try:
            stream.fileno()
        except (OSError, ValueError):
            pass
        else:
            start = stream.tell() if stream.seekable() else 0
            digest = hashlib.file_digest(stream, "sha256")
            size = stream.tell() - start if stream.seekable() else -1
            if size >= 0:
                return digest.hexdigest(), size
    h = hashlib.sha256()
    size = 0
    if not hasattr(stream, "readinto"):
        while data := stream.read(chunk):
            h.update(data)
            size += len(data)
        return h.hexdigest(), size
    buf = bytearray(chunk)
    view = memoryview(buf)
    while n := stream.readinto(buf):
        h.update(view[:n])
        size += n
    return h.hexdigest(), size
