"""Canonical JSON: the one byte form that every hash and signature in provenance is taken over.

RFC 8785 (JCS), restricted to the values provenance records hold: objects with string keys,
arrays, strings, integers of magnitude at most 2**53 - 1 (the I-JSON range, where RFC 8785's
number form is the plain decimal), booleans and null. Object members are sorted by their keys'
UTF-16 code units (RFC 8785, section 3.2.3), there is no whitespace, strings are UTF-8 with
JSON's minimal escapes (`\\"`, `\\\\`, `\\b`, `\\f`, `\\n`, `\\r`, `\\t`, other characters below
U+0020 as `\\u00xx` in lower-case hex). Floats are refused, so no number has two spellings; so
are larger integers, which RFC 8785 could only write rounded.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

MAX_SAFE_INTEGER = 2**53 - 1


class CanonicalError(ValueError):
    """A value that has no canonical form (a float, a non-string key, an unknown type)."""


def _utf16(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _ordered(value: Any, where: str) -> Any:
    """`value` checked, with every object's members in RFC 8785 order."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise CanonicalError(
                f"{where}: integer {value} is outside ±(2**53 - 1), which RFC 8785 cannot write "
                "exactly"
            )
        return value
    if isinstance(value, float):
        raise CanonicalError(f"{where}: floats have no canonical form here ({value!r})")
    if isinstance(value, list | tuple):
        return [_ordered(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        for k in value:
            if not isinstance(k, str):
                raise CanonicalError(f"{where}: object key {k!r} is not a string")
        return {k: _ordered(value[k], f"{where}.{k}") for k in sorted(value, key=_utf16)}
    raise CanonicalError(f"{where}: {type(value).__name__} has no canonical JSON form")


def canonical_json(value: Any) -> bytes:
    """The canonical UTF-8 bytes of `value` (RFC 8785)."""
    try:
        return json.dumps(
            _ordered(value, "$"), separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalError(f"a string holds a lone surrogate ({exc.reason})") from None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_sha256(value: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of `value`."""
    return sha256_hex(canonical_json(value))
