"""The content digest of fingerprint spec v1 (docs/fingerprint.md, section 3) computed from Arrow
record batches, without Postgres: for a Parquet copy of a curated version, read back once.

Each column's canonical text is built vectorised (pyarrow.compute and numpy): integers and
booleans by Arrow's casts, floats and vectors as the hex of their big-endian IEEE 754 bytes,
dates and timestamps from their day and microsecond counts by the proleptic Gregorian calendar
(any year, `BC` for dates before 1 AD as Postgres writes them), strings and json as they are
(json: the file holds Postgres' normalized jsonb text, see `ArrowDigest`); texts of one width
(dates, timestamps of 4-digit years, floats, vectors) as numpy matrices. The row text
`V<len>:<text>` / `N` per column is joined in Arrow (adjacent fixed-width columns with no NULL
first by numpy); only the SHA-256 of each row is taken one row at a time (hashlib), in one
thread while another reads the next batches and builds their row texts (`ArrowDigest.add_all`).
The row hashes are grouped by first byte and each group's sorted hashes hashed, as Postgres
does.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dynamic_assets.declarations.model import VECTOR_TYPE
from dynamic_assets.formats import arrays
from dynamic_assets.formats.threads import ahead

_HEX = np.frombuffer(b"".join(f"{b:02x}".encode() for b in range(256)), dtype=np.uint8).reshape(
    256, 2
)
_US_PER_DAY = 86_400_000_000
# Postgres counts dates in int32 days and timestamps in int64 microseconds from 2000-01-01; the
# binary COPY into Arrow (ADBC) shifts them to 1970-01-01 in the same width, wrapping around for
# infinity (the type's maximum and minimum) and for timestamps after 292277 AD (and the way back
# into Postgres wraps again). Shifting back in the same wrapping arithmetic gives Postgres'
# values exactly.
_PG_EPOCH_DAYS = 10_957
_PG_EPOCH_US = _PG_EPOCH_DAYS * _US_PER_DAY


class ArrowDigestError(ValueError):
    """The batches cannot be digested under spec v1 (a column's type is not its declared one)."""


_HEX16 = (
    _HEX.copy().view(np.uint16).reshape(256)
)  # each byte's two hex digits, as they lie in memory
_PAIRS = np.frombuffer(b"".join(f"{i:02d}".encode() for i in range(100)), dtype=np.uint8).reshape(
    100, 2
)


# The scalars given to compute functions, made without pandas (`formats.arrays`).
_EMPTY, _DASH, _BC, _T, _COLON, _DOT, _Z, _V, _N, _INFINITY, _NEG_INFINITY = map(
    arrays.text, ["", "-", " BC", "T", ":", ".", "Z", "V", "N", "infinity", "-infinity"]
)
_NULL_TEXT = arrays.null(pa.string())


_ZERO_32 = arrays.numbers(np.zeros(1, dtype=np.int32))[0]
_ZERO_64 = arrays.numbers(np.zeros(1, dtype=np.int64))[0]


def _fixed_strings(chars: np.ndarray, valid: pa.Buffer | None) -> pa.Array:
    """A string array of the rows of the ASCII matrix `chars` (rows x width)."""
    n, k = chars.shape
    offsets = np.arange(0, k * (n + 1), k, dtype=np.int32)
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(chars)), valid
    )


# A column's canonical texts all of one width: the ASCII matrix (rows x width) and the validity
# bitmap (None: no NULL). Kept as a matrix up to the row texts, where adjacent ones are joined by
# numpy, their `V<width>:` prefixes included.
Fixed = tuple[np.ndarray, pa.Buffer | None]


def _side_by_side(n: int, pieces: list[bytes | np.ndarray]) -> np.ndarray:
    """The ASCII matrix (n rows) of `pieces` side by side, each either the same bytes in every
    row or a matrix of n rows. Written through a record type with one field a piece, a piece's
    bytes of a row copied as one value."""
    pieces = [p for p in pieces if (len(p) if isinstance(p, bytes) else p.shape[1])]
    widths = [len(p) if isinstance(p, bytes) else p.shape[1] for p in pieces]
    record = np.dtype([(f"f{i}", f"V{w}") for i, w in enumerate(widths)])
    out = np.empty(n, dtype=record)
    for i, (p, w) in enumerate(zip(pieces, widths, strict=True)):
        if isinstance(p, bytes):
            out[f"f{i}"] = np.void(p)
        else:
            out[f"f{i}"] = np.ascontiguousarray(p).view(f"V{w}").reshape(n)
    return out.view(np.uint8).reshape(n, record.itemsize)


def _fixed_hex(raw: np.ndarray, valid: pa.Buffer | None) -> Fixed:
    """The lower-case hex of each row of the uint8 matrix `raw` (rows x k)."""
    n, k = raw.shape
    return _HEX16.take(raw).view(np.uint8).reshape(n, 2 * k), valid


def _digits(out: np.ndarray, at: int, values: np.ndarray, width: int) -> None:
    """Write the non-negative `values` as `width` decimal digits (even) into columns `at`... of
    the ASCII matrix `out`."""
    for k in range(width - 2, -2, -2):
        out[:, at + k : at + k + 2] = _PAIRS[values % 100]
        values = values // 100


def _fixed_ymd(out: np.ndarray, y: np.ndarray, m: np.ndarray, d: np.ndarray) -> None:
    """`YYYY-MM-DD` into the first 10 columns of `out` (years 0 to 9999)."""
    _digits(out, 0, y, 4)
    out[:, 4] = out[:, 7] = ord("-")
    _digits(out, 5, m, 2)
    _digits(out, 8, d, 2)


def _validity(arr: pa.Array) -> pa.Buffer | None:
    """The array's validity bitmap, offset 0 (arrays here are not slices)."""
    if arr.null_count == 0:
        return None
    return pc.is_valid(arr).buffers()[1]


def _plain(arr: pa.Array) -> pa.Array:
    """An array with offset 0, so its buffers can be read as they are."""
    return pa.concat_arrays([arr]) if arr.offset else arr


def _arrow(values: np.ndarray) -> pa.Array:
    """A numpy array of integers or booleans as an Arrow array with no NULL, without pandas."""
    return arrays.booleans(values) if values.dtype == np.bool_ else arrays.numbers(values)


def _values(arr: pa.Array, dtype: type[np.integer]) -> np.ndarray:
    """The values of an integer array with no NULL, read from its buffer (`Array.to_numpy` makes
    pyarrow import pandas)."""
    arr = _plain(arr)
    return np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr))


def _pad(values: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(_arrow(values).cast(pa.string()), width=width, padding="0")


def _civil(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Proleptic Gregorian (astronomical year, month, day) of days since 1970-01-01."""
    z = days.astype(np.int64) + 719_468
    era = np.floor_divide(z, 146_097)
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = np.where(mp < 10, mp + 3, mp - 9)
    return y + (m <= 2), m, d


def _ymd(days: np.ndarray, *, era: bool) -> pa.Array:
    """`YYYY-MM-DD` (at least 4 year digits); with `era` years before 1 AD as `YYYY-MM-DD BC`
    (Postgres' date text), else as their absolute year with no era (its `to_char` `YYYY`)."""
    y, m, d = _civil(days)
    bc = y <= 0
    year = np.where(bc, 1 - y, y)
    text = pc.binary_join_element_wise(_pad(year, 4), _pad(m, 2), _pad(d, 2), _DASH)
    if era and bc.any():
        text = pc.if_else(_arrow(bc), pc.binary_join_element_wise(text, _BC, _EMPTY), text)
    return text


def _infinite(values: np.ndarray, text: pa.Array) -> pa.Array:
    """`infinity` and `-infinity` where Postgres' `values` are the maximum and minimum."""
    info = np.iinfo(values.dtype)
    pos, neg = values == info.max, values == info.min
    if pos.any() or neg.any():
        text = pc.if_else(_arrow(pos), _INFINITY, text)
        text = pc.if_else(_arrow(neg), _NEG_INFINITY, text)
    return text


def _keep_nulls(arr: pa.Array, text: pa.Array) -> pa.Array:
    """`text` with NULL where `arr` is NULL."""
    if arr.null_count == 0:
        return text
    return pc.if_else(pc.is_valid(arr), text, _NULL_TEXT)


def _ymd_rows(days: np.ndarray, first_year: int) -> np.ndarray | None:
    """`YYYY-MM-DD` of days since 1970-01-01 (a year before 1 AD as its absolute year), or None
    when a year is before `first_year` or after 9999 (not 4 digits)."""
    y, m, d = _civil(days)
    if y.min() < first_year or y.max() > 9999:
        return None
    out = np.empty((len(y), 10), dtype=np.uint8)
    _fixed_ymd(out, np.where(y <= 0, 1 - y, y), m, d)
    return out


def _ymd_chars(days: np.ndarray, first_year: int) -> np.ndarray | None:
    """`_ymd_rows`, each day of the values' span written once and taken by index when the span
    is no longer than the values (as a version's days mostly are)."""
    if not len(days):
        return np.empty((0, 10), dtype=np.uint8)
    lo, hi = int(days.min()), int(days.max())
    if hi - lo >= len(days):
        return _ymd_rows(days, first_year)
    table = _ymd_rows(np.arange(lo, hi + 1, dtype=np.int64), first_year)
    if table is None:
        return None
    return np.take(table.view("V10").reshape(-1), days - lo).view(np.uint8).reshape(-1, 10)


@functools.cache
def _clock() -> tuple[np.ndarray, np.ndarray]:
    """`HH:MM:SS` of each second of a day and the 3 digits of 0-999, as values of 8 and 3
    bytes."""
    secs = np.arange(86_400, dtype=np.int64)
    hms = np.empty((86_400, 8), dtype=np.uint8)
    _digits(hms, 0, secs // 3600, 2)
    _digits(hms, 3, secs // 60 % 60, 2)
    _digits(hms, 6, secs % 60, 2)
    hms[:, 2] = hms[:, 5] = ord(":")
    three = np.frombuffer(b"".join(f"{i:03d}".encode() for i in range(1000)), dtype=np.uint8)
    return hms.view("V8").reshape(-1), three.view("V3")


def _date_text(arr: pa.Array) -> pa.Array | Fixed:
    days = _values(arr.cast(pa.int32()).fill_null(_ZERO_32), np.int32)
    pg = days - np.int32(_PG_EPOCH_DAYS)  # wraps as the copy did
    chars = _ymd_chars(pg.astype(np.int64) + _PG_EPOCH_DAYS, 1)
    if chars is not None:  # no infinity, no era, 4-digit years
        return chars, _validity(arr)
    text = _infinite(pg, _ymd(pg.astype(np.int64) + _PG_EPOCH_DAYS, era=True))
    return _keep_nulls(arr, text)


def _timestamp_text(arr: pa.Array) -> pa.Array | Fixed:
    if arr.type.unit != "us":
        raise ArrowDigestError(f"a timestamp column in {arr.type.unit}, not microseconds")
    us = _values(arr.cast(pa.int64()).fill_null(_ZERO_64), np.int64)
    pg = us - np.int64(_PG_EPOCH_US)  # wraps as the copy did
    days = np.floor_divide(pg, _US_PER_DAY)
    rem = pg - days * _US_PER_DAY
    secs, micros = np.divmod(rem, 1_000_000)
    ymd = _ymd_chars(days + _PG_EPOCH_DAYS, -9998)
    if ymd is not None:  # no infinity, 4-digit years
        hms, three = _clock()
        millis = micros // 1000
        pieces = [ymd, b"T", np.take(hms, secs), b".", np.take(three, millis)]
        pieces += [np.take(three, micros - millis * 1000), b"Z"]
        n = len(us)
        pieces = [p if isinstance(p, bytes) else p.view(np.uint8).reshape(n, -1) for p in pieces]
        return _side_by_side(n, pieces), _validity(arr)
    hh, rest = np.divmod(secs, 3600)
    mi, ss = np.divmod(rest, 60)
    text = pc.binary_join_element_wise(
        _ymd(days + _PG_EPOCH_DAYS, era=False),
        _T,
        _pad(hh, 2),
        _COLON,
        _pad(mi, 2),
        _COLON,
        _pad(ss, 2),
        _DOT,
        _pad(micros, 6),
        _Z,
        _EMPTY,
    )
    return _keep_nulls(arr, _infinite(pg, text))


def _float_text(arr: pa.Array) -> Fixed:
    arr = _plain(arr)
    data = np.frombuffer(arr.buffers()[1], dtype="<u8", count=len(arr), offset=0)
    raw = data.astype(">u8").view(np.uint8).reshape(len(arr), 8)
    return _fixed_hex(raw, _validity(arr))


def _vector_text(arr: pa.Array, dim: int) -> Fixed:
    """pgvector's binary form in hex: uint16 dim, uint16 0, dim float32, big-endian."""
    if isinstance(arr, pa.ListArray | pa.LargeListArray):
        arr = arr.cast(pa.list_(pa.float32(), dim))
    if not isinstance(arr, pa.FixedSizeListArray) or arr.type.list_size != dim:
        raise ArrowDigestError(f"a vector column of type {arr.type}, not {dim} float32 values")
    n = len(arr)
    # All n * dim slots (a NULL vector's are there too, and masked by the validity below).
    values = arr.values.slice(arr.offset * dim, n * dim).cast(pa.float32())
    floats = np.frombuffer(_plain(values).buffers()[1], dtype="<u4", count=n * dim)
    raw = np.empty((n, 4 + 4 * dim), dtype=np.uint8)
    raw[:, 0:4] = np.frombuffer(np.array([dim, 0], dtype=">u2").tobytes(), dtype=np.uint8)
    if n and dim:
        raw[:, 4:] = floats.astype(">u4").view(np.uint8).reshape(n, 4 * dim)
    return _fixed_hex(raw, _validity(arr))


def canonical_text(arr: pa.Array, type_: str) -> pa.Array:
    """The canonical text (spec v1) of each value of a column of declared type `type_`, NULL
    where the value is NULL."""
    text = _canonical(arr, type_)
    return _fixed_strings(*text) if isinstance(text, tuple) else text


def _canonical(arr: pa.Array, type_: str) -> pa.Array | Fixed:
    """`canonical_text`, as a matrix where all texts have one width."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    kinds = {
        "string": pa.types.is_string,
        "json": pa.types.is_string,
        "integer": pa.types.is_integer,
        "float": pa.types.is_floating,
        "boolean": pa.types.is_boolean,
        "date": pa.types.is_date32,
        "timestamp": pa.types.is_timestamp,
    }
    if type_ in kinds and not kinds[type_](arr.type):
        raise ArrowDigestError(f"a {type_} column of Arrow type {arr.type}")
    if type_ in ("string", "json"):
        return arr
    if type_ == "integer":
        return arr.cast(pa.int64()).cast(pa.string())
    if type_ == "boolean":
        return arr.cast(pa.string())
    if type_ == "float":
        return _float_text(arr.cast(pa.float64()))
    if type_ == "date":
        return _date_text(arr)
    if type_ == "timestamp":
        return _timestamp_text(arr)
    match = VECTOR_TYPE.match(type_)
    if match:
        return _vector_text(arr, int(match.group(1)))
    raise ArrowDigestError(f"type {type_!r} has no canonical form in spec v1")


# The prefixes `V<len>:` of texts up to 4095 bytes long, then `N` (a NULL's), taken by index.
_SHORT = 4096
_SHORT_INDEX = arrays.numbers(np.array([_SHORT], dtype=np.int64))[0]
_PREFIX = arrays.strings([f"V{n}:" for n in range(_SHORT)] + ["N"])


def _prefixes(text: pa.Array) -> pa.Array:
    """Each value's `V<byte length>:`, or `N` where it is NULL."""
    lengths = pc.binary_length(text)
    longest = pc.max(lengths).as_py()
    if longest is not None and longest >= _SHORT:
        return pc.binary_join_element_wise(_V, lengths.cast(pa.string()), _COLON, _EMPTY).fill_null(
            _N
        )
    return _PREFIX.take(
        lengths.fill_null(_SHORT_INDEX.cast(lengths.type)) if text.null_count else lengths
    )


def row_texts(batch: pa.RecordBatch, columns: list[dict[str, Any]]) -> pa.Array:
    """Each row's text: per declared column `N` for NULL, else `V<bytes>:<text>`."""
    parts: list[Any] = []
    block: list[bytes | np.ndarray] = []  # adjacent fixed-width texts with no NULL, prefixed
    for c in columns:
        try:
            text = _canonical(batch.column(c["name"]), c["type"])
        except ArrowDigestError as exc:
            raise ArrowDigestError(f"column {c['name']}: {exc}") from None
        if isinstance(text, tuple) and text[1] is None:
            block += [f"V{text[0].shape[1]}:".encode(), text[0]]
            continue
        if block:
            parts.append(_fixed_strings(_side_by_side(batch.num_rows, block), None))
            block = []
        if isinstance(text, tuple):
            text = _fixed_strings(*text)
        # The short `V<len>:` / `N` prefixes apart, so each value's text is copied once, by the
        # one join of all columns below.
        parts.append(_prefixes(text))
        parts.append(text.fill_null(_EMPTY) if text.null_count else text)
    if block:
        parts.append(_fixed_strings(_side_by_side(batch.num_rows, block), None))
    if not parts:
        return arrays.strings([b""] * batch.num_rows, pa.binary())
    return pc.binary_join_element_wise(*parts, _EMPTY).cast(pa.binary())


# Rows hashed between two moments the GIL is given up (about 0.1 ms): a thread building the
# next batch's row texts, mostly outside the GIL, waits for it no longer than that (else up to
# the interpreter's switch interval, 5 ms, each time it comes back from Arrow or numpy). Fewer
# rows a run give that thread more time than the hashing, whose own waits then grow.
_HASH_RUN = 128
# Batches whose row texts are built ahead of the hashing (their memory: a few MB each).
_AHEAD = 2


def row_hashes(texts: pa.Array) -> bytes:
    """The SHA-256 of each row text, concatenated (32 bytes a row)."""
    texts = _plain(texts.cast(pa.large_binary()))
    offsets = np.frombuffer(texts.buffers()[1], dtype=np.int64, count=len(texts) + 1).tolist()
    data = memoryview(texts.buffers()[2] or b"")
    sha = hashlib.sha256
    hashes: list[bytes] = []
    for start in range(0, len(texts), _HASH_RUN):
        run = offsets[start : start + _HASH_RUN + 1]
        hashes += [sha(data[a:b]).digest() for a, b in zip(run[:-1], run[1:], strict=True)]
        time.sleep(0)  # gives the GIL to a thread waiting for it
    return b"".join(hashes)


# The row hashes are ordered a part at a time: those of _SORT_SPAN first bytes.
_SORT_SPAN = 4


def sorted_groups(hashes: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """The 32-byte strings `hashes` (dtype S32) in byte order, as each first byte's group.

    A part at a time (the hashes of `_SORT_SPAN` first bytes), so the memory taken besides
    `hashes` is about that part's: taken out, ordered by an integer sort of their first 8 bytes
    (big-endian) and one gather, several times faster than sorting byte strings. Only a group
    in which different hashes share their first 8 bytes is sorted as byte strings."""
    hashes = np.ascontiguousarray(hashes)
    rows = hashes.view("V32")
    first = hashes.view(np.uint8)[::32] // _SORT_SPAN
    for start in range(0, 256, _SORT_SPAN):
        part = np.take(rows, np.flatnonzero(first == start // _SORT_SPAN)).view("S32")
        part = np.take(part.view("V32"), np.argsort(part.view(">u8")[::4].astype(np.uint64)))
        part = part.view("S32")
        span = np.arange(start, start + _SORT_SPAN + 1)
        bounds = np.searchsorted(part.view(np.uint8)[::32], span).tolist()
        for byte, lo, hi in zip(span.tolist(), bounds, bounds[1:], strict=False):
            if hi == lo:
                continue
            group = part[lo:hi]
            heads = group.view(">u8")[::4]
            tied = heads[1:] == heads[:-1]
            if tied.any() and (group[1:][tied] != group[:-1][tied]).any():
                group.sort()
            yield byte, group


class ArrowDigest:
    """The row count and content digest of rows added batch by batch.

    `add` takes record batches holding (at least) the declared columns in their Arrow types as
    the copies carry them (`copies.export.arrow_type`): json as text, which for a file exported
    from Postgres is already its normalized jsonb text. A json text written otherwise gives
    another digest than Postgres would (which normalizes it first). The row hashes are kept in
    one buffer of 32 bytes a row, sized by `expected_rows` (grown when more come)."""

    def __init__(self, columns: list[dict[str, Any]], expected_rows: int = 0):
        self.columns = columns
        self.rows = 0
        self._hashes = np.empty(max(expected_rows, 0), dtype="S32")
        self._digest: str | None = None

    def add(self, batch: pa.RecordBatch) -> None:
        if self._digest is not None:
            raise ValueError("rows added after the digest was taken")
        if batch.num_rows:
            self._add_texts(row_texts(batch, self.columns))

    def _add_texts(self, texts: pa.Array) -> None:
        n = len(texts)
        hashes = row_hashes(texts)
        if self.rows + n > len(self._hashes):
            grown = np.empty(max(self.rows + n, 2 * len(self._hashes)), dtype="S32")
            grown[: self.rows] = self._hashes[: self.rows]
            self._hashes = grown
        self._hashes.view(np.uint8)[self.rows * 32 : (self.rows + n) * 32] = np.frombuffer(
            hashes, dtype=np.uint8
        )
        self.rows += n

    def add_all(self, batches: Iterable[pa.RecordBatch]) -> ArrowDigest:
        """`add` each batch in turn, over two threads: another thread takes the batches from
        `batches` (a Parquet reader decodes them then) and builds their row texts, up to
        `_AHEAD` batches ahead, while this one hashes them. An exception in the other thread is
        raised here; the other thread has ended when this returns or raises."""
        if self._digest is not None:
            raise ValueError("rows added after the digest was taken")
        texts = (row_texts(batch, self.columns) for batch in batches if batch.num_rows)
        with ahead(texts, depth=_AHEAD, name="arrow-digest-row-texts") as built:
            for text in built:
                self._add_texts(text)
        return self

    def hexdigest(self) -> str:
        """The content digest of the rows added so far (no more can be added after it)."""
        if self._digest is None:
            self._digest = self._group_digest()
            self._hashes = np.empty(0, dtype="S32")
        return self._digest

    def _group_digest(self) -> str:
        outer = hashlib.sha256()
        for byte, group in sorted_groups(self._hashes[: self.rows]):
            outer.update(bytes([byte]) + hashlib.sha256(group.data).digest())
        return outer.hexdigest()


def arrow_digest(
    batches: Iterable[pa.RecordBatch], columns: list[dict[str, Any]]
) -> tuple[int, str]:
    """Row count and content digest (spec v1) of the rows in `batches`."""
    d = ArrowDigest(columns).add_all(batches)
    return d.rows, d.hexdigest()
