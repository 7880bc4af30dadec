"""The byte-level judgement of a long JSON Lines line (`_plain_object`) against Python's json:
whatever it takes for one object, json reads as an object without refusal."""

from __future__ import annotations

import json
import random

import pytest

from dynamic_assets.formats.json import LINE_PIECE, _plain_object, _utf8


def json_reads_an_object(data: bytes) -> bool:
    def refuse(name: str) -> None:
        raise ValueError(name)

    try:
        value = json.loads(data.decode("utf-8"), parse_constant=refuse)
        # Every string is text: no lone UTF-16 surrogate.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError):
        return False
    return isinstance(value, dict)


PLAIN = [
    b"{}",
    b'{"a": 1}',
    b'{ "a" : [ 1 , -0 , -0.0 , 1e400 , 2.5E-3 , true , false , null , "" , { } , [ ] ] }',
    b'{"a": {"b": {"c": [[[{"d": "e"}]]]}}, "a": 2}',
    '{"é": "東京 \U0001f600", "esc": "\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9"}'.encode(),
    b'{"a":' + b"[" * 400 + b"]" * 400 + b"}",
    b'{"n": ' + b"9" * 4000 + b"}",
    b'{"\\ud83d\\ude00": "\\uD83D\\uDE00 \\ud7ff\\ue000\\\\ud800 \\u00e9\\ud800\\udc00\\udbff\\udfff"}',
    b'{"a": "' + b"\\ud83d\\ude00x\\n" * 100 + b'"}',
]
NOT_PLAIN = [
    b"[]",
    b'"a"',
    b"{",
    b'{"a": 1',
    b'{"a" 1}',
    b'{"a": 1,}',
    b'{"a": [1,]}',
    b'{"a": [,1]}',
    b'{"a": 1}}',
    b'{"a": 1} x',
    b"{a: 1}",
    b'{"a": 01}',
    b'{"a": 1.}',
    b'{"a": .5}',
    b'{"a": -}',
    b'{"a": +1}',
    b'{"a": 1e}',
    b'{"a": NaN}',
    b'{"a": Infinity}',
    b'{"a": -Infinity}',
    b'{"a": tru}',
    b'{"a": True}',
    b'{"a": "\\x"}',
    b'{"a": "\\u12"}',
    b'{"a": "\\ud800"}',
    b'{"a": "\\udc00"}',
    b'{"\\udfff": 1}',
    b'{"a": "\\ud83d\\ud83d\\ude00"}',
    b'{"a": "\\ud83d\\u0041"}',
    b'{"a": "\\ude00\\ud83d"}',
    b'{"a": "\\\\\\ud800"}',
    b'{"a": "' + b"\\ud83d\\ude00x" * 100 + b'\\ud83d"}',
    b'{"a": "a\tb"}',
    b'{"a": "a\x00b"}',
    b'{"a":\x0b1}',
    b'{"a":\t1}',  # JSON's blank, but a control character: left to the parser
    b'{"a":\r1}',
    b'{"a":\x0c1}',
    b'{"a": "\xff"}',
    b'{"a": "\xed\xa0\x80"}',  # a surrogate written in UTF-8
    b'{"a": "\xe6\x9d"}',
    b'\xef\xbb\xbf{"a": 1}',
    b'{"a": ' + b"9" * 4301 + b"}",
    b'{"a":' + b"[" * 600 + b"]" * 600 + b"}",
    b'{"a": "b}',
    b'{"a\\": 1}',
]


@pytest.mark.parametrize("data", PLAIN)
def test_plain_objects_are_judged_so_and_read_by_json(data):
    assert _plain_object(data, 0, len(data), bytes_per_token=0)
    assert json_reads_an_object(data)


@pytest.mark.parametrize("data", NOT_PLAIN)
def test_what_is_not_a_plain_object_is_left_to_json(data):
    assert not _plain_object(data, 0, len(data), bytes_per_token=0)


def test_no_mutation_of_an_object_is_judged_plain_that_json_refuses():
    rng = random.Random(8)
    alphabet = b' \t\n\r\x0b{}[]:,"\\/-+.0123456789eEabfnrtuldsNIyxA\x00\x1f\xc3\xa9\xff'
    seen_plain = 0
    for _ in range(20_000):
        data = bytearray(rng.choice(PLAIN))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data) + 1)
            op = rng.randrange(3)
            if op == 0 and at < len(data):
                del data[at]
            elif op == 1:
                data.insert(at, rng.choice(alphabet))
            elif at < len(data):
                data[at] = rng.choice(alphabet)
        data = bytes(data)
        if data[:1] == b"{" and _plain_object(data, 0, len(data), bytes_per_token=0):
            seen_plain += 1
            assert json_reads_an_object(data), data
    assert seen_plain > 1000


@pytest.mark.parametrize("skip", [0, 1, 2])
@pytest.mark.parametrize("char", ["é", "東", "\U0001f600"])
def test_utf8_read_in_pieces_is_judged_as_python_decodes(char, skip):
    good = ("a" * skip + char * (LINE_PIECE // len(char.encode()) + 3)).encode()
    assert _utf8(good, 0, len(good))
    assert not _utf8(good[:-1], 0, len(good) - 1)
    for at in (LINE_PIECE - 1, LINE_PIECE, LINE_PIECE + 1):
        bad = good[:at] + b"\x80" + good[at:]
        assert not _utf8(bad, 0, len(bad))
    assert _utf8(b"x" + good + b"\xff", 1, len(good) + 1)


def test_a_line_dense_in_strings_escapes_or_items_is_left_to_json():
    sparse = b'{"a": "' + b"x" * 10_000 + b'\\n", "b": [1, 2]}'
    assert _plain_object(sparse, 0, len(sparse))
    for dense in (
        b'{"a": "' + b"x" * 5000 + b'", ' + b'"b": 1, ' * 3 + b'"c": 2}',
        b'{"a": "' + b"x\\n" * 1000 + b'"}',
        b'{"a": [' + b"1, " * 1000 + b"2]}",
    ):
        assert json_reads_an_object(dense)
        assert _plain_object(dense, 0, len(dense), bytes_per_token=0)
        assert not _plain_object(dense, 0, len(dense))
