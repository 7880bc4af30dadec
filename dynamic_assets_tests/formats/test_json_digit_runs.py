"""The guard in front of the JSON array parser counts a run of digits across the pieces read."""

from __future__ import annotations

import io

import pytest

from dynamic_assets.formats.json import LONGEST_DIGITS, _DigitRuns, _TooManyDigits


def _read_all(text: bytes, size: int) -> bytes:
    guard = _DigitRuns(io.BytesIO(text))
    out = b""
    while piece := guard.read(size):
        out += piece
    return out


@pytest.mark.parametrize("size", [1, 7, 4_299, 4_300, 65_536])
@pytest.mark.parametrize("before", [b"[1, ", b'[{"a": 1.', b"[" + b"2" * 4_298 + b", "])
def test_runs_shorter_than_the_limit_pass_in_pieces_of_any_size(size, before):
    text = before + b"9" * (LONGEST_DIGITS - 1) + b"]"
    assert _read_all(text, size) == text


@pytest.mark.parametrize("size", [1, 7, 4_299, 4_300, 65_536])
@pytest.mark.parametrize("before", [b"[1, ", b"[" + b"2" * 4_298 + b", "])
def test_a_run_of_the_limit_is_refused_at_its_first_byte(size, before):
    text = before + b"9" * LONGEST_DIGITS + b"]"
    with pytest.raises(_TooManyDigits) as raised:
        _read_all(text, size)
    assert raised.value.at == len(before) + 1
