"""QuickXorHash: the content hash OneDrive for Business reports as `file.hashes.quickXorHash`.

Microsoft's algorithm (OneDrive developer docs, "Code snippets: QuickXorHash"): a 160-bit block
starts at zero; byte `i` of the input is XORed into the block rotated left by `11 * i` bits
(bits past bit 159 wrap to bit 0); the 8-byte little-endian input length is XORed into the last
8 of the block's 20 bytes (little-endian order); the digest is the 20 bytes, shown in Base64.

Because 11 and 160 share no factor, every byte whose index is the same modulo 160 lands at the
same rotation. `update` therefore folds the input into 160 byte lanes with numpy (one XOR
reduction over rows of 160 bytes, at memory speed) and `digest` rotates each lane into place
once, so hashing keeps pace with a download. Why not the PyPI package `quickxorhash`: it is a
C extension published only as a source archive (every install needs a C compiler), its
`setup.py` imports `distutils` (gone from the standard library since Python 3.12, which this
project supports), and it copies 64-bit cells to bytes in host byte order.
"""

from __future__ import annotations

import base64

import numpy as np

WIDTH_BITS = 160
SHIFT = 11
_LANES = WIDTH_BITS  # one lane per index modulo 160
_MASK = (1 << WIDTH_BITS) - 1


class QuickXorHash:
    """Incremental QuickXorHash with the `hashlib`-like interface (`update`, `digest`, `b64digest`)."""

    name = "quickxorhash"
    digest_size = 20

    def __init__(self, data: bytes | bytearray | memoryview = b"") -> None:
        self._lanes = np.zeros(_LANES, dtype=np.uint8)
        self._length = 0
        if data:
            self.update(data)

    @property
    def length(self) -> int:
        """Bytes hashed so far."""
        return self._length

    def update(self, data: bytes | bytearray | memoryview) -> None:
        buf = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
        n = buf.size
        if not n:
            return
        start = self._length % _LANES
        head = min(n, (_LANES - start) % _LANES)
        if head:
            self._lanes[start : start + head] ^= buf[:head]
        rest = buf[head:]
        full = (rest.size // _LANES) * _LANES
        if full:
            rows = np.ascontiguousarray(rest[:full]).view(np.uint64).reshape(-1, _LANES // 8)
            self._lanes ^= np.bitwise_xor.reduce(rows, axis=0).view(np.uint8)
        tail = rest.size - full
        if tail:
            self._lanes[:tail] ^= rest[full:]
        self._length += n

    def digest(self) -> bytes:
        block = 0
        for index, value in enumerate(self._lanes.tolist()):
            if value:
                shifted = value << ((index * SHIFT) % WIDTH_BITS)
                block ^= (shifted & _MASK) | (shifted >> WIDTH_BITS)
        out = bytearray(block.to_bytes(self.digest_size, "little"))
        for i, b in enumerate((self._length & ((1 << 64) - 1)).to_bytes(8, "little")):
            out[self.digest_size - 8 + i] ^= b
        return bytes(out)

    def b64digest(self) -> str:
        """The digest as Graph shows it (Base64, 28 characters)."""
        return base64.b64encode(self.digest()).decode("ascii")

    def hexdigest(self) -> str:
        return self.digest().hex()

    def copy(self) -> QuickXorHash:
        other = QuickXorHash()
        other._lanes = self._lanes.copy()
        other._length = self._length
        return other


def quickxorhash(data: bytes | bytearray | memoryview) -> str:
    """The Base64 QuickXorHash of `data`."""
    return QuickXorHash(data).b64digest()
