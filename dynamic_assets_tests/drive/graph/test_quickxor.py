"""QuickXorHash against published vectors and a literal reading of Microsoft's description."""

from __future__ import annotations

import base64
import random

import pytest

from dynamic_assets.drive.graph.quickxor import QuickXorHash, quickxorhash

# (input, hash), both Base64: vectors computed with Microsoft's C# reference (as published with
# rclone's OneDrive backend).
VECTORS = [
    ("", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
    ("Sg==", "SgAAAAAAAAAAAAAAAQAAAAAAAAA="),
    ("tbQ=", "taAFAAAAAAAAAAAAAgAAAAAAAAA="),
    ("/aNzzCFPS/A=", "/RjFHJgRgicsAR4ACAAAAAAAAAA="),
    ("T6LYJIfDh81JrAK309H2JMJTXis=", "zBTHrspn3mEcohlJdIUAbjGNaNg="),
    ("DWAAX5/CIfrmErgZa8ot6ZraeSbu", "LR2Z0PjuRYGKQB/mhQAuMrAGZbQ="),
    (
        "Mb7EGva2rEE5fENDL85P+BsapHEEjv2/siVhKjvAQe02feExVOQSkfmuYzU/kTF1MaKjPmKF/w+cbvwfdWL8aQ==",
        "n1anP5NfvD4XDYWIeRPW3ZkPv1Y=",
    ),
]


def documented(data: bytes) -> str:
    """Microsoft's description, one byte at a time: XOR byte i into a 160-bit block rotated left
    by 11*i bits, lay the block out little-endian, XOR the 64-bit little-endian length into its
    last 8 bytes."""
    width = 160
    block = 0
    for i, b in enumerate(data):
        shift = (11 * i) % width
        rotated = ((b << shift) | (b >> (width - shift))) & ((1 << width) - 1)
        block ^= rotated
    out = bytearray(block.to_bytes(20, "little"))
    for i, b in enumerate(len(data).to_bytes(8, "little")):
        out[12 + i] ^= b
    return base64.b64encode(bytes(out)).decode()


@pytest.mark.parametrize(("data", "expected"), VECTORS)
def test_published_vectors(data, expected):
    raw = base64.b64decode(data)
    assert quickxorhash(raw) == expected
    assert documented(raw) == expected


def test_any_chunking_gives_the_documented_hash():
    rng = random.Random(7)
    for size in [0, 1, 159, 160, 161, 319, 320, 1000, 4097, 70_001]:
        data = rng.randbytes(size)
        h = QuickXorHash()
        pos = 0
        while pos < size:
            step = rng.choice([1, 7, 160, 161, 999, 4096])
            h.update(memoryview(data)[pos : pos + step])
            pos += step
        assert h.b64digest() == documented(data), size
        assert h.length == size


def test_one_changed_byte_changes_the_hash():
    data = bytearray(random.Random(1).randbytes(10_000))
    before = quickxorhash(data)
    data[5_000] ^= 0x01
    assert quickxorhash(data) != before
