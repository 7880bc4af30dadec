"""Canonical JSON: the one byte form that every hash and signature in provenance is taken over.

RFC 8785 (JCS) restricted to the values provenance records hold: objects with string keys,
arrays, strings, integers, booleans and null. Keys are sorted, there is no whitespace, strings
are UTF-8 with JSON's minimal escapes. Floats are refused, so no number has two spellings.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


class CanonicalError(ValueError):
    """A value that has no canonical form (a float, a non-string key, an unknown type)."""


def _check(value: Any, where: str) -> None:
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        raise CanonicalError(f"{where}: floats have no canonical form here ({value!r})")
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise CanonicalError(f"{where}: object key {k!r} is not a string")
            _check(v, f"{where}.{k}")
        return
    raise CanonicalError(f"{where}: {type(value).__name__} has no canonical JSON form")


def canonical_json(value: Any) -> bytes:
    """The canonical UTF-8 bytes of `value`."""
    _check(value, "$")
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_sha256(value: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of `value`."""
    return sha256_hex(canonical_json(value))
