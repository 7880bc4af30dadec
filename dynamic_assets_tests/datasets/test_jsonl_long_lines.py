"""JSON Lines with lines of several megabytes among short ones: each staged record is the value
Python's json module reads from its line, and Postgres' own reading of the line's text; a bad
long line is refused naming its file and line."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from psycopg import sql

from dynamic_assets.datasets.staging import load_version
from dynamic_assets.db.tables import RAW_SCHEMA
from dynamic_assets.declarations.model import Dataset
from dynamic_assets.formats.errors import LoadError
from dynamic_assets_tests.support.drive_files import write_file
from dynamic_assets_tests.support.staging import source_file, version_rows

DOCS = Dataset(
    name="docs",
    formats=["jsonl"],
    columns=[{"name": "doc_id", "nullable": False}, {"name": "body"}],
)
MB = 1 << 20


def long_line(doc_id: str, size: int) -> str:
    """One JSON object of about `size` characters: escapes, non-ASCII text, an astral character
    as a surrogate pair escape, numbers in several spellings and nesting."""
    piece = 'Zoë "quoted" \\ back\tslash 東京 \U0001f600 é\n'
    body = piece * (size // len(piece))
    nested = {"k": [1, -2.5, 1.0e2, 3e-7, True, None, "x" * 1000], "deep": [[[{"a": "b"}]]]}
    text = json.dumps({"doc_id": doc_id, "body": body, "nested": nested}, ensure_ascii=False)
    # Spellings json.dumps never writes, which a file may hold: \\u escapes and an exponent.
    return text[:-1] + ', "esc": "\\u00e9\\ud83d\\ude00\\/", "n": 1.0E2, "i": 12345678901234567890}'


def staged_rows(conn, lines_by_number: dict[int, str]) -> list[tuple]:
    rows = version_rows(
        conn, RAW_SCHEMA, DOCS, "v1", sql.SQL("_file_id, _row, _record, _record::text"), "_row"
    )
    # Postgres' reading of each line's text, independent of how the record was sent to it.
    expected_text = {
        n: conn.execute("SELECT %s::jsonb::text", (line,)).fetchone()[0]
        for n, line in lines_by_number.items()
    }
    for _, number, _, text in rows:
        assert text == expected_text[number], f"line {number} staged other than Postgres reads it"
    return [row[:3] for row in rows]


def test_jsonl_long_lines_among_short_ones_stage_the_values_json_reads(db, tmp_path):
    lines = [
        long_line("first", 3 * MB),  # longer than the bytes read to see the file's shape
        '{"doc_id": "a", "body": "Zoë 東京", "n": 1.5}',
        "",
        " " * (2 * MB) + '{"doc_id": "padded"}' + "\t" * 10,  # long only in its blanks
        long_line("middle", 5 * MB) + "\r",
        '{"doc_id": "b", "body": null, "nested": {"k": [1, 2]}}',
        *(long_line(f"m{i}", 600_000) for i in range(16)),  # more text than one batch holds
        long_line("last", 2 * MB),  # no newline after it
    ]
    data = "\n".join(lines)
    path = write_file(tmp_path, "docs.jsonl", data)
    with db.connect(autocommit=True) as conn:
        (load,) = load_version(conn, DOCS, "v1", [source_file(path, DOCS, file_id=4)])
        by_number = {i: line for i, line in enumerate(lines, 1) if line.strip()}
        rows = staged_rows(conn, by_number)
    assert rows == [(4, n, json.loads(line)) for n, line in by_number.items()]
    assert [r[2]["doc_id"] for r in rows] == [
        *["first", "a", "padded", "middle", "b"],
        *(f"m{i}" for i in range(16)),
        "last",
    ]
    assert load.rows == 22
    assert load.sha256 == hashlib.sha256(data.encode("utf-8")).hexdigest()
    assert load.bytes == len(data.encode("utf-8"))


def load_error(db, path) -> LoadError:
    with db.connect(autocommit=True) as conn, pytest.raises(LoadError) as info:
        load_version(conn, DOCS, "v1", [source_file(path, DOCS)])
    err = info.value
    assert err.path == f"datasets/docs/v1/{path.name}"
    assert str(err).startswith(err.path + ":")
    return err


def test_jsonl_a_long_line_cut_short_is_refused_naming_its_line(db, tmp_path):
    cut = long_line("cut", 3 * MB)[:-40]
    path = write_file(tmp_path, "docs.jsonl", '{"doc_id": "a"}\n\n' + cut + '\n{"doc_id": "b"}\n')
    err = load_error(db, path)
    assert err.line == 3
    assert "not valid JSON" in str(err)


def test_jsonl_a_long_line_with_a_bad_byte_is_refused_naming_line_and_column(db, tmp_path):
    good = long_line("bad", 3 * MB).encode("utf-8")
    at = good.index(b"Zo", 2 * MB)
    bad = good[:at] + b"\xff" + good[at:]
    path = write_file(tmp_path, "docs.jsonl", b'{"doc_id": "a"}\n  ' + bad + b"\n")
    err = load_error(db, path)
    assert err.line == 2
    column = at + 1  # in bytes of the line without its blanks
    assert f"not valid UTF-8 at column {column}" in str(err)


def test_jsonl_a_long_line_that_is_an_array_is_refused(db, tmp_path):
    array = json.dumps(["x" * (2 * MB), 1])
    path = write_file(tmp_path, "docs.jsonl", '{"doc_id": "a"}\n' + array + "\n")
    err = load_error(db, path)
    assert err.line == 2
    assert "must be a JSON object, found list" in str(err)


def padded(text: str) -> str:
    """`text`, an object, made a long line by a long string added as its first member."""
    return '{"pad": "' + "p" * (2 * MB) + '", ' + text[1:]


HOSTILE = [
    # An astral character as a surrogate pair escape, and one written as itself.
    '{"doc_id": "pair", "body": "\\ud83d\\ude00 \U0001f600 \\uD83D\\uDE00"}',
    '{"doc_id": "nested", "body": {"a": {"b": [{"c": [[], {}, [{}]]}], "d": {"e": null}}}}',
    '{"doc_id": "numbers", "body": [1e400, -1e400, -0, -0.0, 0e0, 1E-400, 1.5e+3, '
    "123456789012345678901234567890, 0.1000000000000000055511151231257827]}",
    '{"doc_id": "first", "body": 1, "body": "the last one", "doc_id": "dup"}',
    '{"doc_id":"tight","body":[true,false,null,"",{"":""}]}',
    '{ "doc_id" :\t"blanks" ,\r\t "body" : [ 1 , 2 ] }',
    '{"doc_id": "escapes", "body": "\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u2028\\\\ud800"}',
    '{"doc_id": "deep", "body": ' + "[" * 400 + "]" * 400 + "}",
]


def test_jsonl_long_lines_of_every_kind_stage_the_values_json_reads(db, tmp_path):
    lines = [padded(text) for text in HOSTILE]
    path = write_file(tmp_path, "docs.jsonl", "\n".join(lines) + "\n")
    with db.connect(autocommit=True) as conn:
        (load,) = load_version(conn, DOCS, "v1", [source_file(path, DOCS, file_id=4)])
        by_number = dict(enumerate(lines, 1))
        rows = staged_rows(conn, by_number)
    # Postgres keeps 1e400 as the number it is, where Python's json reads infinity.
    numbers = json.loads(
        lines[2].replace("-1e400", "-1" + "0" * 400).replace("1e400", "1" + "0" * 400)
    )
    expected = (
        [json.loads(line) for line in lines[:2]]
        + [numbers]
        + [json.loads(line) for line in lines[3:]]
    )
    assert rows == [(4, n, value) for n, value in enumerate(expected, 1)]
    assert [r[2]["doc_id"] for r in rows] == [
        *["pair", "nested", "numbers", "dup", "tight", "blanks", "escapes", "deep"]
    ]
    assert load.rows == len(lines)


RENAMED = Dataset(
    name="docs",
    formats=["jsonl"],
    columns=[
        {"name": "doc_id", "source": "Doc Id", "nullable": False},
        {"name": "body"},
    ],
)


def test_jsonl_long_lines_with_renamed_keys_stage_them_under_their_names(db, tmp_path):
    texts = [
        '{"Doc Id": "a", "doc_id": "dropped", "body": "\\ud83d\\ude00 東京", "n": 1.0E2}',
        '{"doc_id": "kept", "body": {"x": [1, -0, 2.50]}}',
    ]
    lines = [padded(text) for text in texts]
    path = write_file(tmp_path, "docs.jsonl", "\n".join(lines) + "\n")
    with db.connect(autocommit=True) as conn:
        load_version(conn, RENAMED, "v1", [source_file(path, RENAMED)])
        rows = version_rows(conn, RAW_SCHEMA, RENAMED, "v1", sql.SQL("_row, _record"), "_row")
    first = json.loads(lines[0])
    del first["doc_id"]
    first["doc_id"] = first.pop("Doc Id")
    assert rows == [(1, first), (2, json.loads(lines[1]))]
    assert rows[0][1]["doc_id"] == "a" and rows[0][1]["n"] == 100


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"doc_id": "lone", "body": "\\ud800 x"}', "lone UTF-16 surrogate"),
        ('{"doc_id": "lone low", "body": "x \\udE00"}', "lone UTF-16 surrogate"),
        ('{"doc_id": "nul", "body": "\\u0000"}', "NUL character"),
        # The escaped backslash before `u0000` is refused alike.
        ('{"doc_id": "nul", "body": "\\\\u0000"}', "NUL character"),
        ('{"doc_id": "nan", "body": NaN}', "not valid JSON"),
        ('{"doc_id": "inf", "body": -Infinity}', "not valid JSON"),
        ('{"doc_id": "digits", "body": ' + "9" * 5000 + "}", "not valid JSON"),
        ('{"doc_id": "tab", "body": "a\tb"}', "not valid JSON"),
        ('{"doc_id": "vt",\x0b"body": 1}', "not valid JSON"),
        ('{"doc_id": "zero", "body": 01}', "not valid JSON"),
        ('{"doc_id": "esc", "body": "\\x"}', "not valid JSON"),
        ('{"doc_id": "comma", "body": [1,],}', "not valid JSON"),
        ('{"doc_id": "extra", "body": 1}}', "more text after the object, at column"),
        ('{"doc_id": "deep", "body": ' + "[" * 5000 + "]" * 5000 + "}", "nested too deeply"),
    ],
)
def test_jsonl_a_bad_long_line_is_refused_as_a_short_one_is(db, tmp_path, text, words):
    short = write_file(tmp_path, "short.jsonl", '{"doc_id": "a"}\n' + text + "\n")
    expected = str(load_error(db, short)).replace("short.jsonl", "docs.jsonl")
    assert words in expected
    long = padded(text)
    path = write_file(tmp_path, "docs.jsonl", '{"doc_id": "a"}\n' + long + "\n")
    err = load_error(db, path)
    assert err.line == 2
    # The same words, its columns moved by the padding's length.
    shift = len(long) - len(text)
    assert str(err) == re.sub(
        r"(column|char) (\d+)", lambda m: f"{m[1]} {int(m[2]) + shift}", expected
    )
