"""JSON and JSON Lines: one record per object, with its line (JSON Lines) or row (array item).

The shape is taken from the content: a file that starts with `[` (after a UTF-8 BOM and blanks)
and is named `.json` is an array of objects, streamed item by item with ijson; a file that starts
with `{` is JSON Lines, one object a line (a `.json` file included). Anything else is refused.
Every record must be an object; NaN and infinities are refused (JSON has no such values), and so
are the NUL character, which Postgres cannot store, a lone UTF-16 surrogate escape (`\ud800`
without its pair: not a character, refused by Postgres' jsonb) and nesting deeper than Python's
parser reads. For a sensitive dataset an error never shows what the parser quoted from the file.
A JSON Lines line of `LINE_PIECE` bytes or more can be passed on unparsed (`UnparsedRecord`): its
bytes are judged against JSON's grammar without building text or value (`_plain_object`, which
takes only what Python's json reads as an object); any other line is parsed, so a refusal keeps
the parser's words and position.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple, Protocol

import ijson
import numpy as np
import simplejson

from dynamic_assets.formats.errors import BrokenJsonArray, LoadError, NotAnObject

JSON_BATCH = 20_000  # records a staging batch holds
_HEAD = 1 << 16  # bytes read to see the shape
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
TOO_DEEP = "the JSON is nested too deeply to read"
NUL_ESCAPE = "a string contains the NUL character (\\u0000), which Postgres cannot store"
LONE_SURROGATE = (
    "a string holds a lone UTF-16 surrogate (\\ud800 to \\udfff without its pair), "
    "which is not a character"
)


def dumps(value: Any) -> str:
    """The JSON text of a parsed value whose numbers are exact (integers of any size, a
    `Decimal` for any other number): each written as the file wrote it, so that Postgres' jsonb
    reads the file's number, not a double's rounding of it (`1.50` stays `1.50`)."""
    return simplejson.dumps(value, ensure_ascii=False, use_decimal=True, allow_nan=False)


class JsonRecord(NamedTuple):
    """One object: where it is (`line` for JSON Lines, `row` for array items), its value and its
    JSON text."""

    line: int | None
    row: int | None
    value: dict[str, Any]
    text: str

    @property
    def number(self) -> int:
        """The line or the row, whichever the record has."""
        return self.line if self.line is not None else self.row or 0


class UnparsedRecord(NamedTuple):
    """A long JSON Lines object passed on as the UTF-8 bytes of its line (without the blanks
    around it), judged to be JSON but not parsed: `data` is the text Postgres reads."""

    line: int
    data: memoryview

    @property
    def number(self) -> int:
        return self.line


class ByteStream(Protocol):
    """What the JSON reader needs of a byte stream (a file, a hashing reader, a download)."""

    def read(self, size: int = -1, /) -> bytes: ...

    def readline(self, size: int = -1, /) -> bytes: ...


class _Prefixed:
    """A byte stream with some already-read bytes put back in front."""

    def __init__(self, head: bytes, rest: ByteStream):
        self._head = head
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size < 0:
                data, self._head = self._head + self._rest.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._rest.read(size)

    def readline(self, size: int = -1) -> bytes:
        if not self._head:
            return self._rest.readline(size)
        end = self._head.find(b"\n") + 1 or len(self._head)
        if 0 <= size < end:
            end = size
        line, self._head = self._head[:end], self._head[end:]
        if self._head or line.endswith(b"\n") or len(line) == size:
            return line  # a whole line, or `size` bytes of one
        return line + self._rest.readline(size - len(line) if size >= 0 else -1)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line


def json_records(
    path: str, stream: ByteStream, fmt: str, *, sensitive: bool = False
) -> Iterator[JsonRecord]:
    """The records of a `json` or `jsonl` file read from `stream`; raises `LoadError` naming
    `path` and the line or row (with `sensitive`, without text from the file)."""
    for record in json_records_or_lines(path, stream, fmt, sensitive=sensitive):
        assert isinstance(record, JsonRecord)
        yield record


def json_records_or_lines(
    path: str,
    stream: ByteStream,
    fmt: str,
    *,
    sensitive: bool = False,
    long_unparsed: bool = False,
    exact_numbers: bool = False,
) -> Iterator[JsonRecord | UnparsedRecord]:
    """`json_records`; with `long_unparsed`, a JSON Lines line of `LINE_PIECE` bytes or more that
    is plainly one object comes as an `UnparsedRecord`, refused or staged as its record would
    be; with `exact_numbers`, a record's value holds its non-integer numbers as `Decimal` (and
    an array item's integers of any size), for `dumps` to write them back as they were (a JSON
    Lines line's own text is otherwise what is staged; an array item's text is always written
    by `dumps`)."""
    head = stream.read(_HEAD)
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    first = head.lstrip()[:1]
    src = _Prefixed(head, stream)
    if not first:
        raise LoadError(path, "the file is empty: no JSON records", line=1)
    if first == b"[" and fmt == "json":
        yield from _array_records(path, src, sensitive, exact_numbers)
    elif first == b"{":
        yield from _lines_records(
            path,
            src,
            sensitive,
            single_object_hint=fmt == "json",
            long_unparsed=long_unparsed,
            exact_numbers=exact_numbers,
        )
    else:
        raise LoadError(
            path, "not a JSON array of objects nor JSON Lines (one object per line)", line=1
        )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _lines_records(
    path: str,
    src: _Prefixed,
    sensitive: bool,
    *,
    single_object_hint: bool = False,
    long_unparsed: bool = False,
    exact_numbers: bool = False,
) -> Iterator[JsonRecord | UnparsedRecord]:
    lineno = 0
    raw: bytes | bytearray
    while raw := src.readline(LINE_PIECE):
        lineno += 1
        if len(raw) == LINE_PIECE and not raw.endswith(b"\n"):
            raw = _rest_of_line(src, raw)
        start, end = _stripped(raw)
        if start == end:
            continue
        if long_unparsed and end - start >= LINE_PIECE and _plain_object(raw, start, end):
            if raw.find(b"\\u0000", start, end) >= 0:
                raise LoadError(path, NUL_ESCAPE, line=lineno, sensitive=sensitive)
            # A long line that is plainly one object is handed over as its bytes, never as
            # text or value: the consumer holds its only reference.
            unparsed = [UnparsedRecord(lineno, memoryview(raw)[start:end])]
            del raw
            yield unparsed.pop()
            continue
        # Otherwise the line is decoded in place, without its surrounding blanks, and dropped:
        # a long line is held once as bytes, then once as text beside its parsed value, then
        # handed over with nothing here keeping it alive.
        text = _decoded(path, raw, start, end, lineno, sensitive)
        del raw
        record = _parsed_line(path, text, lineno, sensitive, single_object_hint, exact_numbers)
        del text
        if len(record.text) < LINE_PIECE:
            yield record
            continue
        handed = [record]
        del record
        # A long record is popped as it is yielded: the consumer holds its only reference, and
        # can drop its value (or text) as soon as it has passed it on.
        yield handed.pop()


def _decoded(
    path: str, raw: bytes | bytearray, start: int, end: int, lineno: int, sensitive: bool
) -> str:
    """The text of the line `raw[start:end]`."""
    try:
        return str(memoryview(raw)[start:end], "utf-8")
    except UnicodeDecodeError as exc:
        raise LoadError(
            path,
            f"not valid UTF-8 at column {exc.start + 1}",
            line=lineno,
            detail=f"byte 0x{raw[start + exc.start]:02x}",
            sensitive=sensitive,
        ) from None


def _parsed_line(
    path: str,
    text: str,
    lineno: int,
    sensitive: bool,
    single_object_hint: bool,
    exact_numbers: bool = False,
) -> JsonRecord:
    """The record of a line's text, parsed by Python's json (non-integer numbers as `Decimal`
    with `exact_numbers`)."""
    exact: dict[str, Any] = {"parse_float": Decimal} if exact_numbers else {}
    try:
        obj = json.loads(text, parse_constant=_reject_constant, **exact)
    except RecursionError:
        raise LoadError(path, TOO_DEEP, line=lineno) from None
    except json.JSONDecodeError as exc:
        raise _line_error(path, text, lineno, exc, sensitive, single_object_hint) from None
    except ValueError as exc:  # NaN, an infinity, an integer of too many digits
        raise LoadError(
            path, "not valid JSON", line=lineno, detail=str(exc), sensitive=sensitive
        ) from None
    if not isinstance(obj, dict):
        raise NotAnObject(
            path,
            f"each line must be a JSON object, found {type(obj).__name__}",
            obj,
            line=lineno,
            sensitive=sensitive,
        )
    if "\\u0000" in text:
        raise LoadError(path, NUL_ESCAPE, line=lineno, sensitive=sensitive)
    if _SURROGATE_ESCAPE.search(text) and not _encodable(path, obj, lineno):
        raise LoadError(path, LONE_SURROGATE, line=lineno)
    return JsonRecord(lineno, None, obj, text)


# JSON's grammar (RFC 8259), which Python's json reads alike: a value of the grammar is never NaN,
# an infinity or (bounded here) an integer of more digits than Python converts.
_SPACES = re.compile(rb" *")  # JSON's other blanks are control characters, not taken
_SCALAR = re.compile(rb"(-?(?:0|[1-9][0-9]*))(\.[0-9]+)?([eE][-+]?[0-9]+)?|true|false|null")
# An escape: a character's, a \\u escape of no UTF-16 surrogate, or a high and low surrogate's
# pair (as Python's json pairs them); a lone surrogate is left to the parser, which refuses it.
_ESCAPE_PATTERN = (
    rb'\\(?:["\\/bfnrt]|u(?![dD][89a-fA-F])[0-9a-fA-F]{4}'
    rb"|u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2})"
)
_ESCAPE = re.compile(_ESCAPE_PATTERN)
_MAX_DIGITS = 4000  # an integer's digits Python converts (its limit is 4300)
_MAX_DEPTH = 500  # nesting read without a parser's recursion (Python's reads to about 990)
_KEY, _FIRST_KEY, _COLON, _VALUE, _FIRST_VALUE, _AFTER = range(6)


def _plain_object(
    buf: bytes | bytearray, start: int, end: int, *, bytes_per_token: int = 1024
) -> bool:
    """Whether `buf[start:end]` is UTF-8 text of one JSON object that Python's json reads as
    one, with no control character (blanks other than spaces included), nested at most
    `_MAX_DEPTH` deep, with no lone UTF-16 surrogate escape: judged on the bytes, building no
    text and no value. A line of more than one string, escape or comma every `bytes_per_token`
    bytes is not judged (the walk costs some microseconds a token, where the parser's are far
    cheaper). False says nothing of the line: the parser then reads it."""
    if buf[start] != 0x7B:  # "{"
        return False
    tokens = buf.count(b'"', start, end) + buf.count(b"\\", start, end)
    if (tokens + buf.count(b",", start, end)) * bytes_per_token > end - start:
        return False
    if np.frombuffer(buf, np.uint8, end - start, start).min() < 0x20:
        return False
    if not _utf8(buf, start, end):
        return False
    closers = bytearray(b"}")
    pos, state = start + 1, _FIRST_KEY
    while True:
        pos = _SPACES.match(buf, pos, end).end()  # type: ignore[union-attr]
        if pos >= end:
            return False
        c = buf[pos]
        if state == _AFTER:
            if c == 0x2C:  # ","
                state = _KEY if closers[-1] == 0x7D else _VALUE
                pos += 1
                continue
            if c != closers[-1]:
                return False
            closers.pop()
            pos += 1
            if not closers:
                return pos == end
            continue
        if state == _COLON:
            if c != 0x3A:  # ":"
                return False
            state, pos = _VALUE, pos + 1
            continue
        if state in (_KEY, _FIRST_KEY):
            if c == 0x7D and state == _FIRST_KEY:  # an empty object's "}", read as after a member
                state = _AFTER
                continue
            if c != 0x22:  # '"'
                return False
            pos, state = _string_end(buf, pos, end), _COLON
            if pos < 0:
                return False
            continue
        if c in (0x7B, 0x5B):  # "{" or "["
            if len(closers) >= _MAX_DEPTH:
                return False
            closers.append(c + 2)  # "}" or "]"
            state, pos = (_FIRST_KEY if c == 0x7B else _FIRST_VALUE), pos + 1
            continue
        if c == 0x5D and state == _FIRST_VALUE:  # an empty array's "]", read as after an item
            state = _AFTER
            continue
        if c == 0x22:
            pos, state = _string_end(buf, pos, end), _AFTER
            if pos < 0:
                return False
            continue
        m = _SCALAR.match(buf, pos, end)
        if m is None:
            return False
        if m[1] is not None and m[2] is None and m[3] is None and len(m[1]) > _MAX_DIGITS:
            return False
        pos, state = m.end(), _AFTER


def _string_end(buf: bytes | bytearray, pos: int, end: int) -> int:
    """Where the JSON string opening at `pos` ends (after its quote), or -1 if it is not one
    (the line holds no control character): its quotes and escapes are found by byte search."""
    pos += 1
    quote = -1
    while True:
        if quote < pos:  # the first quote, or the one after an escape that ended past it
            quote = buf.find(b'"', pos, end)
            if quote < 0:
                return -1
        slash = buf.find(b"\\", pos, quote)
        if slash < 0:
            return quote + 1
        esc = _ESCAPE.match(buf, slash, end)
        if esc is None:
            return -1
        pos = esc.end()


def _utf8(buf: bytes | bytearray, start: int, end: int) -> bool:
    """Whether `buf[start:end]` is UTF-8 (as Python decodes it), decoded piece by piece."""
    if buf.isascii():
        return True
    view = memoryview(buf)
    while start < end:
        stop = min(start + LINE_PIECE, end)
        try:
            str(view[start:stop], "utf-8")
        except UnicodeDecodeError as exc:
            # A character cut by the end of the piece is read again with the next one.
            if stop == end or exc.reason != "unexpected end of data" or exc.start == 0:
                return False
            stop = start + exc.start
        start = stop
    return True


_BLANKS = b" \t\n\r\x0b\x0c"
LINE_PIECE = 1 << 20  # bytes a line is read by


def _rest_of_line(src: _Prefixed, start: bytes) -> bytearray:
    """A line longer than `LINE_PIECE` whose first piece is `start`, with its newline: gathered
    piece by piece into one growing buffer, never as a list of pieces joined at the end (which
    holds the line twice)."""
    line = bytearray(start)
    del start
    while piece := src.readline(LINE_PIECE):
        line += piece
        if len(piece) < LINE_PIECE or piece.endswith(b"\n"):
            break
    return line


def _stripped(raw: bytes | bytearray) -> tuple[int, int]:
    """The bounds of `raw` without the ASCII blanks around it (`bytes.strip`'s, without a copy)."""
    start, end = 0, len(raw)
    while start < end and raw[start] in _BLANKS:
        start += 1
    while end > start and raw[end - 1] in _BLANKS:
        end -= 1
    return start, end


def _line_error(
    path: str,
    text: str,
    lineno: int,
    exc: json.JSONDecodeError,
    sensitive: bool,
    single_object_hint: bool,
) -> LoadError:
    """The refusal of a line that does not parse: one problem, in the reader's words."""
    if exc.msg == "Extra data":
        # A whole value, then more: the position says where, the parser's words add nothing.
        return LoadError(
            path, f"not valid JSON: more text after the object, at column {exc.colno}", line=lineno
        )
    if single_object_hint and lineno == 1 and exc.pos >= len(text.rstrip()):
        return LoadError(
            path,
            "not a JSON array of objects nor JSON Lines (one object per line): "
            "the file starts with an object spanning several lines",
            line=1,
        )
    # The parser's words may quote the line; its position never does.
    at = f" at column {exc.colno}" if sensitive else ""
    return LoadError(path, f"not valid JSON{at}", line=lineno, detail=str(exc), sensitive=sensitive)


def _encodable(path: str, obj: Any, lineno: int) -> bool:
    """Whether every string of a parsed value (keys included) is text UTF-8 can hold."""
    try:
        simplejson.dumps(obj, ensure_ascii=False, use_decimal=True).encode("utf-8")
    except UnicodeEncodeError:
        return False
    except RecursionError:
        raise LoadError(path, TOO_DEEP, line=lineno) from None
    return True


# Python converts no longer run of digits to an int (`sys.int_info.default_max_str_digits`); the
# C parser's exact numbers crash the interpreter on a longer integer.
LONGEST_DIGITS = 4_300
# Each digit as `0`, any other byte as `.`: a run of digits is then found by `bytes.find` (a
# regular expression tries again from every digit: 2 s for 43 MB of numbers).
_AS_DIGITS = bytes(48 if 48 <= b <= 57 else 46 for b in range(256))
_LONG_RUN = b"0" * LONGEST_DIGITS


class _TooManyDigits(Exception):
    def __init__(self, at: int):
        self.at = at  # the run's first byte, counted from 1 (after a byte order mark)


class _DigitRuns:
    """A stream read by the array parser: each piece, before the parser sees it, checked to hold
    no run of LONGEST_DIGITS digits or more (runs across pieces counted whole)."""

    def __init__(self, src: ByteStream):
        self._src = src
        self._read = 0  # bytes handed over so far
        self._carried = 0  # digits ending the last piece

    def read(self, size: int = -1, /) -> bytes:
        piece = self._src.read(size)
        if not piece:
            return piece
        digits = piece.translate(_AS_DIGITS)
        leading = len(digits) - len(digits.lstrip(b"0"))
        if self._carried + leading >= LONGEST_DIGITS:
            raise _TooManyDigits(self._read - self._carried + 1)
        long = digits.find(_LONG_RUN)
        if long >= 0:
            raise _TooManyDigits(self._read + long + 1)
        if leading == len(digits):
            self._carried += leading
        else:
            self._carried = len(digits) - len(digits.rstrip(b"0"))
        self._read += len(piece)
        return piece


def _array_records(
    path: str, src: _Prefixed, sensitive: bool, exact_numbers: bool = False
) -> Iterator[JsonRecord]:
    index = 0
    try:
        # With `exact_numbers`, an integer of any size and every other number a `Decimal`, for
        # `dumps` to write each back as the file wrote it; the C parser's exact mode crashes the
        # interpreter on an integer longer than Python converts, so no run of that many digits
        # reaches it. Otherwise numbers as floats, and integers within 64 bits (beyond, the
        # parser refuses them).
        stream: _DigitRuns | _Prefixed = _DigitRuns(src) if exact_numbers else src
        for obj in ijson.items(stream, "item", use_float=not exact_numbers):
            index += 1
            if not isinstance(obj, dict):
                raise NotAnObject(
                    path,
                    f"array item {index} is a {type(obj).__name__}, not an object",
                    obj,
                    row=index,
                    sensitive=sensitive,
                )
            try:
                text = dumps(obj)
            except RecursionError:
                raise LoadError(
                    path, f"array item {index} is nested too deeply to read", row=index
                ) from None
            except ValueError as exc:
                raise LoadError(
                    path,
                    f"array item {index} holds a value JSON cannot represent",
                    row=index,
                    detail=str(exc),
                    sensitive=sensitive,
                ) from None
            if "\\u0000" in text or "\x00" in text:
                raise LoadError(
                    path,
                    "a string contains the NUL character, which Postgres cannot store",
                    row=index,
                    sensitive=sensitive,
                )
            yield JsonRecord(None, index, obj, text)
    except _TooManyDigits as exc:
        # Where the parser has got to is not where the run is (it reads ahead): the run's byte.
        raise LoadError(
            path,
            f"a run of {LONGEST_DIGITS:,} digits or more at byte {exc.at:,}: a number this long "
            "cannot be read exactly (a string of as many digits is refused with it)",
        ) from None
    except InvalidOperation:
        raise BrokenJsonArray(
            path,
            f"a number out of range after array item {index}",
            index,
            "its exponent is beyond what a decimal number can hold",
            sensitive=sensitive,
        ) from None
    except ijson.JSONError as exc:
        # The parser's message goes on to quote the text around the error: only its first
        # line is kept, and none of it for a sensitive dataset.
        raise BrokenJsonArray(
            path,
            f"not valid JSON after array item {index}",
            index,
            _first_line(exc),
            sensitive=sensitive,
        ) from None
    except UnicodeDecodeError as exc:
        raise BrokenJsonArray(
            path,
            f"not valid UTF-8 after array item {index}",
            index,
            _first_line(exc),
            sensitive=sensitive,
        ) from None


def _first_line(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else ""
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    lines = str(detail).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
