"""Encryption at rest of the archive files of sensitive datasets: an AES-256-GCM envelope around
the Parquet file, streamed chunk by chunk (memory bounded by one chunk).

The envelope (all integers big-endian):

    header  = b"DAENC001"          8 bytes, the format tag
              key id               8 bytes, the first 8 bytes of SHA-256(key)
              chunk size           4 bytes, plaintext bytes per chunk (1 MiB when written here)
              nonce prefix         7 bytes, random for each file
    chunk i = AES-256-GCM(key).encrypt(nonce, plaintext[i], associated_data=header)
              with nonce = nonce prefix || i (4 bytes) || final flag (1 byte: 1 on the last
              chunk, else 0), i.e. the ciphertext followed by its 16-byte tag

    file    = header || chunk 0 || chunk 1 || ... || last chunk

Every chunk but the last holds exactly `chunk size` plaintext bytes; the last holds 0 to `chunk
size` bytes and the file ends right after it. This is the STREAM construction (Hoang et al.,
2015): the index in each nonce refuses reordered or dropped chunks, the final flag a file cut at
a chunk boundary, the header as associated data a changed tag, key id or chunk size; a wrong key
or any altered byte fails a tag.

`SealingWriter` writes the envelope as a file is written to it (the Parquet writer of an export
writes through it); `open_envelope` reads the plaintext of an envelope as a seekable file,
authenticating every chunk once when opened and decrypting chunks again as they are read, so no
plaintext is written anywhere while an archive is checked, read or restored.

The key is `DYNAMIC_ASSETS_ARCHIVE_KEY`, the base64 of 32 random bytes (e.g.
`python -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())"`). On rotation
the old key moves to `DYNAMIC_ASSETS_ARCHIVE_KEY_PREVIOUS`, which is tried for files whose key id
is its own; `dynamic-assets restore` then a lifecycle pass re-archives a version under the new
key. The key itself is never written anywhere: files and the registry hold only its key id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT = b"DAENC001"
FORMAT_NAME = "aes-256-gcm-stream-v1"
KEY_ENV = "DYNAMIC_ASSETS_ARCHIVE_KEY"
PREVIOUS_KEY_ENV = "DYNAMIC_ASSETS_ARCHIVE_KEY_PREVIOUS"
CHUNK_BYTES = 1024 * 1024
TAG_BYTES = 16
PREFIX_BYTES = 7
HEADER = struct.Struct(">8s8sI7s")
MAX_CHUNKS = 2**32


class EncryptionError(ValueError):
    """An archive cannot be encrypted or decrypted; the message never holds a key."""


class KeyMissing(EncryptionError):
    """No configured key is the one an archive needs (or none is configured)."""


class Corrupt(EncryptionError):
    """The file is not a whole, unaltered envelope."""


def key_id(key: bytes) -> str:
    """The key's id: the hex of the first 8 bytes of its SHA-256."""
    return hashlib.sha256(key).digest()[:8].hex()


@dataclass(frozen=True, repr=False)
class ArchiveKeys:
    """The configured keys: the current one (encrypts and decrypts) and the previous one
    (decrypts only)."""

    current: bytes | None
    previous: bytes | None = None

    def __repr__(self) -> str:
        ids = [key_id(k) for k in (self.current, self.previous) if k]
        return f"ArchiveKeys(key ids {ids})"

    def for_id(self, wanted: str) -> bytes | None:
        for key in (self.current, self.previous):
            if key is not None and key_id(key) == wanted:
                return key
        return None


def _decode(env: Mapping[str, str], name: str) -> bytes | None:
    text = env.get(name, "").strip()
    if not text:
        return None
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise EncryptionError(f"{name} is not valid base64 (it must encode 32 bytes)") from None
    if len(key) != 32:
        raise EncryptionError(f"{name} encodes {len(key)} bytes, not the 32 of an AES-256 key")
    return key


def key_configured(environ: Mapping[str, str] | None = None) -> bool:
    """Whether `DYNAMIC_ASSETS_ARCHIVE_KEY` is set (not whether it is valid)."""
    env = os.environ if environ is None else environ
    return bool(env.get(KEY_ENV, "").strip())


def archive_keys(environ: Mapping[str, str] | None = None) -> ArchiveKeys:
    """The keys of the environment; EncryptionError when one is set but is not 32 bytes in
    base64."""
    env = os.environ if environ is None else environ
    return ArchiveKeys(_decode(env, KEY_ENV), _decode(env, PREVIOUS_KEY_ENV))


def _read_exact(src: IO[bytes], size: int) -> bytes:
    parts: list[bytes] = []
    left = size
    while left:
        part = src.read(left)
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _nonce(prefix: bytes, index: int, final: bool) -> bytes:
    if index >= MAX_CHUNKS:
        raise EncryptionError("the file has more chunks than the envelope can number")
    return prefix + struct.pack(">IB", index, 1 if final else 0)


class SealingWriter(io.RawIOBase):
    """A writable file whose bytes go to `dst` as the envelope under `key`, one chunk at a time:
    at most two chunks of plaintext are held in memory and none is written anywhere else.
    `close()` writes the last chunk (a file that is never closed is not a whole envelope)."""

    def __init__(self, dst: IO[bytes], key: bytes, *, chunk_bytes: int | None = None) -> None:
        super().__init__()
        self.chunk_bytes = chunk_bytes or CHUNK_BYTES
        self.key_id = key_id(key)
        self._header = HEADER.pack(
            FORMAT, bytes.fromhex(self.key_id), self.chunk_bytes, os.urandom(PREFIX_BYTES)
        )
        self._prefix = self._header[-PREFIX_BYTES:]
        self._aead = AESGCM(key)
        self._dst = dst
        self._pending = bytearray()
        self._index = 0
        self._written = 0
        dst.write(self._header)

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._written

    def write(self, data) -> int:
        if self.closed:
            raise ValueError("write to a closed envelope")
        view = memoryview(data).cast("B")
        self._pending += view
        self._written += len(view)
        # A full chunk is sealed only once a byte after it exists: the last one carries the flag.
        while len(self._pending) > self.chunk_bytes:
            self._seal(bytes(self._pending[: self.chunk_bytes]), final=False)
            del self._pending[: self.chunk_bytes]
        return len(view)

    def _seal(self, chunk: bytes, *, final: bool) -> None:
        nonce = _nonce(self._prefix, self._index, final)
        self._dst.write(self._aead.encrypt(nonce, chunk, self._header))
        self._index += 1

    def close(self) -> None:
        if not self.closed:
            self._seal(bytes(self._pending), final=True)
            self._pending = bytearray()
        super().close()


def encrypt_stream(
    src: IO[bytes], dst: IO[bytes], key: bytes, *, chunk_bytes: int | None = None
) -> str:
    """Write the envelope of everything `src` holds to `dst` (in chunks of `chunk_bytes`,
    CHUNK_BYTES by default); returns the key id."""
    with SealingWriter(dst, key, chunk_bytes=chunk_bytes) as sealed:
        while block := src.read(sealed.chunk_bytes):
            sealed.write(block)
    return sealed.key_id


def read_header(src: IO[bytes]) -> tuple[bytes, str, int, bytes]:
    """The envelope's header, its key id, chunk size and nonce prefix; Corrupt when `src` does
    not start with one."""
    header = _read_exact(src, HEADER.size)
    if len(header) < HEADER.size:
        raise Corrupt("is truncated (shorter than the envelope's header)")
    tag, kid, chunk_bytes, prefix = HEADER.unpack(header)
    if tag != FORMAT:
        raise Corrupt("is not an encrypted archive envelope (wrong format tag)")
    if not 0 < chunk_bytes <= 64 * CHUNK_BYTES:
        raise Corrupt(f"has an envelope header with an impossible chunk size ({chunk_bytes})")
    return header, kid.hex(), chunk_bytes, prefix


def _key_for(keys: ArchiveKeys, kid: str) -> bytes:
    """The configured key of id `kid`; KeyMissing when neither configured key has it."""
    key = keys.for_id(kid)
    if key is not None:
        return key
    configured = [key_id(k) for k in (keys.current, keys.previous) if k]
    if not configured:
        raise KeyMissing(
            f"is encrypted (key id {kid}) and {KEY_ENV} is not set: set it to the key "
            "the archive was written under"
        )
    raise KeyMissing(
        f"was encrypted under key id {kid}; {KEY_ENV} and {PREVIOUS_KEY_ENV} hold key id(s) "
        f"{', '.join(configured)}, so the key is wrong or missing"
    )


def decrypt_stream(src: IO[bytes], dst: IO[bytes], keys: ArchiveKeys) -> str:
    """Write the plaintext of the envelope in `src` to `dst`; returns the key id it was written
    under. KeyMissing when neither configured key has that id; Corrupt when a chunk fails its
    tag (an altered byte, a chunk moved or dropped, the file cut short)."""
    header, kid, chunk_bytes, prefix = read_header(src)
    aead = AESGCM(_key_for(keys, kid))
    size = chunk_bytes + TAG_BYTES
    index = 0
    current = _read_exact(src, size)
    while True:
        following = _read_exact(src, size)
        final = not following
        if len(current) < TAG_BYTES or (not final and len(current) < size):
            raise Corrupt(f"is truncated or altered (chunk {index} is incomplete)")
        try:
            dst.write(aead.decrypt(_nonce(prefix, index, final), current, header))
        except InvalidTag:
            raise Corrupt(
                f"is truncated or altered (chunk {index} fails its authentication tag)"
            ) from None
        if final:
            return kid
        current, index = following, index + 1


class OpenedEnvelope(io.RawIOBase):
    """The plaintext of an envelope as a seekable, read-only file, decrypted chunk by chunk
    as it is read: memory holds at most two decrypted chunks and no plaintext is written
    anywhere. Opening it (`open_envelope`) authenticates every chunk once, so a file that is
    not a whole, unaltered envelope is refused before any byte is handed out."""

    def __init__(self, src: IO[bytes], keys: ArchiveKeys) -> None:
        super().__init__()
        src.seek(0)
        self._header, kid, self._chunk_bytes, self._prefix = read_header(src)
        self._aead = AESGCM(_key_for(keys, kid))
        self._src = src
        self.key_id = kid
        body = src.seek(0, io.SEEK_END) - HEADER.size
        sealed = self._chunk_bytes + TAG_BYTES
        self._chunks = max(1, -(-body // sealed))
        last = body - (self._chunks - 1) * sealed
        if last < TAG_BYTES:
            raise Corrupt(f"is truncated or altered (chunk {self._chunks - 1} is incomplete)")
        self._size = (self._chunks - 1) * self._chunk_bytes + last - TAG_BYTES
        self._pos = 0
        self._cache: dict[int, bytes] = {}
        self._lock = threading.Lock()
        for index in range(self._chunks):
            self._chunk(index, keep=False)

    def _chunk(self, index: int, *, keep: bool = True) -> bytes:
        found = self._cache.get(index)
        if found is not None:
            return found
        sealed = self._chunk_bytes + TAG_BYTES
        self._src.seek(HEADER.size + index * sealed)
        data = _read_exact(self._src, sealed)
        final = index == self._chunks - 1
        try:
            plain = self._aead.decrypt(_nonce(self._prefix, index, final), data, self._header)
        except InvalidTag:
            raise Corrupt(
                f"is truncated or altered (chunk {index} fails its authentication tag)"
            ) from None
        if keep:
            if len(self._cache) >= 2:
                self._cache.pop(next(iter(self._cache)))
            self._cache[index] = plain
        return plain

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        with self._lock:
            done = 0
            while done < len(view) and self._pos < self._size:
                index, offset = divmod(self._pos, self._chunk_bytes)
                piece = self._chunk(index)[offset : offset + len(view) - done]
                view[done : done + len(piece)] = piece
                done += len(piece)
                self._pos += len(piece)
            return done

    def size(self) -> int:
        return self._size


def open_envelope(src: IO[bytes], keys: ArchiveKeys) -> OpenedEnvelope:
    """The plaintext of the envelope in the seekable `src` as a file decrypted as it is read
    (see OpenedEnvelope); KeyMissing or Corrupt as `decrypt_stream`."""
    return OpenedEnvelope(src, keys)
