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
import os
import struct
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


def encrypt_stream(
    src: IO[bytes], dst: IO[bytes], key: bytes, *, chunk_bytes: int | None = None
) -> str:
    """Write the envelope of everything `src` holds to `dst` (in chunks of `chunk_bytes`,
    CHUNK_BYTES by default); returns the key id."""
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    kid = key_id(key)
    header = HEADER.pack(FORMAT, bytes.fromhex(kid), chunk_bytes, os.urandom(PREFIX_BYTES))
    prefix = header[-PREFIX_BYTES:]
    aead = AESGCM(key)
    dst.write(header)
    index = 0
    current = _read_exact(src, chunk_bytes)
    while True:
        following = _read_exact(src, chunk_bytes)
        final = not following
        dst.write(aead.encrypt(_nonce(prefix, index, final), current, header))
        if final:
            return kid
        current, index = following, index + 1


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


def decrypt_stream(src: IO[bytes], dst: IO[bytes], keys: ArchiveKeys) -> str:
    """Write the plaintext of the envelope in `src` to `dst`; returns the key id it was written
    under. KeyMissing when neither configured key has that id; Corrupt when a chunk fails its
    tag (an altered byte, a chunk moved or dropped, the file cut short)."""
    header, kid, chunk_bytes, prefix = read_header(src)
    key = keys.for_id(kid)
    if key is None:
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
    aead = AESGCM(key)
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
