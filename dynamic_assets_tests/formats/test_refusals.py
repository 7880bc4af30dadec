"""The readers refuse a file with a located `LoadError` (file, line or row, reason), never with
another exception: bytes that are not text, a header without rows, JSON too deep to read, a lone
UTF-16 surrogate, text after a JSON object."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from dynamic_assets.declarations.model import WITHHELD
from dynamic_assets.formats.csv import CsvFile
from dynamic_assets.formats.errors import LoadError
from dynamic_assets.formats.json import json_records

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "bad"
NAMES = ["date", "symbol", "exchange", "open", "high", "low", "close", "volume", "note"]


def _read_csv(data: bytes, names: list[str] | None, *, sensitive: bool = False) -> None:
    reader = CsvFile("f.csv", lambda: io.BytesIO(data), names, sensitive=sensitive)
    try:
        for _ in reader.batches():
            pass
        reader.finish()
    finally:
        reader.close()


@pytest.mark.parametrize("names", [NAMES, None], ids=["declared", "from-header"])
def test_gzip_bytes_under_a_csv_name_are_refused_at_line_1(names):
    data = (CORPUS / "gzip_bytes.csv").read_bytes()
    assert data[:2] == b"\x1f\x8b"  # the gzip magic number (RFC 1952)
    with pytest.raises(LoadError) as info:
        _read_csv(data, names)
    assert info.value.message == (
        "f.csv: line 1: not valid UTF-8 at column 2; save the file as UTF-8 (byte 0x8b)"
    )
    with pytest.raises(LoadError) as info:
        _read_csv(data, names, sensitive=True)
    assert info.value.message == (
        f"f.csv: line 1: not valid UTF-8 at column 2; save the file as UTF-8 {WITHHELD}"
    )


def test_a_header_without_a_line_end_and_no_rows_says_so():
    with pytest.raises(LoadError) as info:
        _read_csv(",".join(NAMES).encode(), NAMES)
    assert info.value.message == "f.csv: line 2: the file has a header but no data rows"


def _records(data: bytes, fmt: str, *, sensitive: bool = False) -> list:
    return list(json_records(f"f.{fmt}", io.BytesIO(data), fmt, sensitive=sensitive))


def test_json_nested_too_deeply_names_its_line_or_item():
    deep = b"[" * 10_000 + b"]" * 10_000
    with pytest.raises(LoadError) as info:
        _records(b'{"a": 1}\n{"a": ' + deep + b"}\n", "jsonl")
    assert info.value.message == "f.jsonl: line 2: the JSON is nested too deeply to read"
    with pytest.raises(LoadError) as info:
        _records(b'[{"a": 1}, {"a": ' + deep + b"}]", "json")
    assert info.value.message == "f.json: row 2: array item 2 is nested too deeply to read"


def test_a_lone_surrogate_names_its_line_and_a_pair_is_a_character():
    lines = [
        b'{"a": "ok"}',
        b'{"a": "\\ud83d\\ude00"}',  # a surrogate pair: U+1F600
        b"",
        b'{"a": "x \\\\ud800"}',  # an escaped backslash, then text: no surrogate
        b'{"a": "half \\ud800 a pair"}',
    ]
    with pytest.raises(LoadError) as info:
        _records(b"\n".join(lines) + b"\n", "jsonl")
    assert info.value.line == 5
    assert "line 5: a string holds a lone UTF-16 surrogate" in info.value.message
    records = _records(b"\n".join(lines[:4]) + b"\n", "jsonl")
    assert [r.value["a"] for r in records] == ["ok", "\U0001f600", "x \\ud800"]
    assert [r.value["a"] for r in records] == [json.loads(line)["a"] for line in lines[:4] if line]


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
@pytest.mark.parametrize("sensitive", [False, True], ids=["internal", "sensitive"])
def test_text_after_an_object_is_one_problem(fmt, sensitive):
    with pytest.raises(LoadError) as info:
        _records(b'{"a": 1} secret\n', fmt, sensitive=sensitive)
    assert info.value.message == (
        f"f.{fmt}: line 1: not valid JSON: more text after the object, at column 10"
    )


def test_an_object_spanning_lines_in_a_json_file_is_named_as_such():
    with pytest.raises(LoadError) as info:
        _records(b'{\n  "a": 1\n}\n', "json")
    assert info.value.message == (
        "f.json: line 1: not a JSON array of objects nor JSON Lines (one object per line): "
        "the file starts with an object spanning several lines"
    )
