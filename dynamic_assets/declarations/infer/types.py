"""Column type inference: each value of a sample classified, and a declared type per column.

* CSV: every cell is text, classified here (integer, float, boolean, ISO date, ISO timestamp,
  ``[0.1, 0.2, ...]`` vectors of constant length, else string); empty cells are nulls.
* JSON and JSON Lines: from the JSON values (ints, floats, bools, ISO date/timestamp strings,
  lists of numbers of constant length are vectors, other objects and arrays are json).
* Parquet: from the Arrow schema; only vector lengths and nulls are read from the data.

`ColumnStats` also keeps what the key guess and the proposed expectations need (minimum,
distinct values of categories, uniqueness), so the sample is read once for all of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from dynamic_assets.declarations.infer.samples import Batch
from dynamic_assets.declarations.infer.unique import UniqueKeys, value_keys
from dynamic_assets.declarations.model import Column
from dynamic_assets.declarations.names import WRITER_COLUMNS

MAX_VECTOR_DIM = 16_000  # pgvector's limit for the vector type
LOW_CARDINALITY = 20  # at most this many distinct values for an in-set expectation
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


# Patterns for Arrow's RE2 regex kernels; the date and timestamp ones serve Python's re too.
_BOOL = r"^(?i)(true|false)$"
_INT = r"^[+-]?(0|[1-9][0-9]*)$"
_FLOAT = r"^[+-]?(([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+)$"
_NANLIKE = r"^(?i)[+-]?(nan|inf|infinity)$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_TIMESTAMP = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
    r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$"
)
_VECTORISH = r"^\[.*\]$"
_DATE_RE = re.compile(_DATE)
_TIMESTAMP_RE = re.compile(_TIMESTAMP)


def _valid_date(s: str) -> bool:
    try:
        date.fromisoformat(s[:10])
    except ValueError:
        return False
    return True


def _valid_timestamp(s: str) -> bool:
    if not _valid_date(s) or int(s[11:13]) > 23 or int(s[14:16]) > 59:
        return False
    return not (len(s) > 16 and s[16] == ":" and int(s[17:19]) > 60)


def _number_list(value: Any) -> bool:
    return bool(value) and all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in value
    )


def _text_vector_length(s: str) -> int | None:
    try:
        value = json.loads(s)
    except ValueError:
        return None
    return len(value) if isinstance(value, list) and _number_list(value) else None


def _json_kind(value: Any) -> tuple[str, int | None]:
    """The kind of one (non-null) JSON value, and its length if it is a vector."""
    if isinstance(value, bool):
        return "boolean", None
    if isinstance(value, int):
        return ("integer" if _INT64_MIN <= value <= _INT64_MAX else "json"), None
    if isinstance(value, float):
        return "float", None
    if isinstance(value, str):
        if _DATE_RE.match(value) and _valid_date(value):
            return "date", None
        if _TIMESTAMP_RE.match(value) and _valid_timestamp(value):
            return "timestamp", None
        return "string", None
    if isinstance(value, list) and _number_list(value):
        return "vector", len(value)
    return "json", None


def _resolve(kinds: set[str], lengths: set[int], family: str) -> str:
    """The declared type of a column from the kinds of its values."""
    mixed = "string" if family == "csv" else "json"
    kinds = set(kinds)
    if "vector" in kinds:
        if kinds == {"vector"} and len(lengths) == 1:
            (dim,) = lengths
            if 1 <= dim <= MAX_VECTOR_DIM:
                return f"vector({dim})"
        kinds = (kinds - {"vector"}) | {mixed}
    if "nanlike" in kinds:
        numeric = kinds & {"integer", "float"}
        kinds = (kinds - {"nanlike"}) | ({"float"} if numeric else {"string"})
    if not kinds:
        return "string"
    for declared, allowed in (
        ("integer", {"integer"}),
        ("float", {"integer", "float"}),
        ("boolean", {"boolean"}),
        ("date", {"date"}),
        ("timestamp", {"date", "timestamp"}),
        ("string", {"string", "date", "timestamp"}),
    ):
        if kinds <= allowed:
            return declared
    return mixed


class ColumnStats:
    """What the sample shows of one column: kinds of values, nulls, minimum, categories, and
    whether its values are unique so far."""

    def __init__(self, name: str, track_unique: bool) -> None:
        self.name = name
        self.nonnull = 0
        self.blanks = 0  # CSV cells of only spaces or a quoted "": text, or nulls once typed
        self.kinds: set[str] = set()
        self.lengths: set[int] = set()
        self.minimum: float | None = None
        self.distinct: set[str] | None = set()
        self.unique: UniqueKeys | None = UniqueKeys() if track_unique else None

    # -- helpers ---------------------------------------------------------------------------

    def _min(self, value: float | None) -> None:
        if value is not None and value == value and (self.minimum is None or value < self.minimum):
            self.minimum = float(value)

    def _distinct(self, values: Iterable[Any]) -> None:
        if self.distinct is None:
            return
        self.distinct.update(v for v in values if isinstance(v, str))
        if len(self.distinct) > LOW_CARDINALITY:
            self.distinct = None

    def _track(self, values: Any, nulls: int) -> None:
        if self.unique is None:
            return
        if nulls or not self.kinds <= {"integer", "string", "date", "timestamp", "boolean"}:
            self.unique = None
        else:
            self.unique.add(value_keys(values))

    # -- CSV: text cells, classified with Arrow's regex kernels ----------------------------

    def add_text(self, arr: pa.Array) -> None:
        valid = pc.drop_null(arr)
        n = len(valid)
        self.nonnull += n
        if n:
            text = pc.utf8_trim_whitespace(valid)
            blanks = pc.sum(pc.equal(text, "")).as_py() or 0
            self.blanks += blanks
            matched = blanks
            for kind, pattern in (
                ("boolean", _BOOL),
                ("integer", _INT),
                ("float", _FLOAT),
                ("nanlike", _NANLIKE),
                ("date", _DATE),
                ("timestamp", _TIMESTAMP),
                ("vector", _VECTORISH),
            ):
                mask = pc.match_substring_regex(text, pattern)
                count = pc.sum(mask).as_py() or 0
                if not count:
                    continue
                matched += count
                subset = pc.filter(text, mask)
                if kind in ("integer", "float"):
                    count -= self._text_numbers(kind, subset)
                elif kind in ("date", "timestamp", "vector"):
                    count -= self._text_checked(kind, subset)
                if count:
                    self.kinds.add(kind)
            if matched < n:
                self.kinds.add("string")
            self._distinct(pc.unique(valid).to_pylist() if self.distinct is not None else ())
        self._track(arr, arr.null_count)

    def _text_numbers(self, kind: str, subset: pa.Array) -> int:
        """Adds the minimum of numbers; returns how many are out of range (then strings)."""
        try:
            numbers = pc.cast(subset, pa.int64() if kind == "integer" else pa.float64())
        except pa.ArrowInvalid:
            if kind == "float":
                numbers = pa.array([float(s) for s in subset.to_pylist()], pa.float64())
            else:  # integers beyond bigint: kept as text
                ints = [int(s) for s in subset.to_pylist()]
                fits = [i for i in ints if _INT64_MIN <= i <= _INT64_MAX]
                if len(fits) < len(ints):
                    self.kinds.add("string")
                numbers = pa.array(fits, pa.int64())
                self._min(pc.min(numbers).as_py() if len(numbers) else None)
                return len(ints) - len(fits)
        self._min(pc.min(numbers).as_py())
        return 0

    def _text_checked(self, kind: str, subset: pa.Array) -> int:
        """Checks dates, timestamps and vectors that matched a pattern; returns how many fail."""
        bad: list[str] = []
        for value in pc.unique(subset).to_pylist():
            if kind == "date":
                ok = _valid_date(value)
            elif kind == "timestamp":
                ok = _valid_timestamp(value)
            else:
                length = _text_vector_length(value)
                ok = length is not None
                if length is not None:
                    self.lengths.add(length)
            if not ok:
                bad.append(value)
        if not bad:
            return 0
        self.kinds.add("string")
        return pc.sum(pc.is_in(subset, value_set=pa.array(bad, pa.string()))).as_py() or 0

    # -- Parquet: the Arrow type says the kind ---------------------------------------------

    def add_arrow(self, arr: pa.Array, where: str) -> None:
        t = arr.type
        if pa.types.is_dictionary(t):
            arr = arr.dictionary_decode()
            t = arr.type
        n = len(arr) - arr.null_count
        self.nonnull += n
        if n:
            kind = _arrow_kind(t, self.name, where)
            if kind == "vector?":
                valid = pc.drop_null(arr)
                lengths = pc.unique(pc.list_value_length(valid)).to_pylist()
                if pc.list_flatten(valid).null_count:
                    kind = "json"
                else:
                    kind = "vector"
                    self.lengths.update(lengths)
            elif kind == "vector":
                self.lengths.add(t.list_size)
            elif kind == "binary":  # taken as text when it is UTF-8, as the loader casts it
                try:
                    arr = pc.cast(arr, pa.string())
                except pa.ArrowInvalid as exc:
                    raise ValueError(
                        f"{where}: column {self.name!r} holds binary data that is not UTF-8 "
                        "text, which no declared type fits"
                    ) from exc
                kind = "string"
            self.kinds.add(kind)
            if kind in ("integer", "float"):
                values = arr if kind == "integer" else pc.cast(arr, pa.float64(), safe=False)
                self._min(pc.min_max(values)["min"].as_py())
            if kind == "string":
                self._distinct(pc.unique(pc.drop_null(arr)).to_pylist())
        self._track(arr, arr.null_count)

    # -- JSON: Python values --------------------------------------------------------------

    def add_json(self, values: list[Any]) -> None:
        nulls = 0
        for value in values:
            if value is None:
                nulls += 1
                continue
            kind, length = _json_kind(value)
            self.kinds.add(kind)
            if length is not None:
                self.lengths.add(length)
            elif kind in ("integer", "float"):
                self._min(value)
        self.nonnull += len(values) - nulls
        self._distinct(values)
        self._track(values, nulls)

    # -- result ---------------------------------------------------------------------------

    def to_column(self, family: str, rows: int, name: str) -> Column:
        """The column declared as `name`, with the file's name for it as its `source` when the
        two differ."""
        declared = _resolve(self.kinds, self.lengths, family)
        nonnull = self.nonnull if declared == "string" else self.nonnull - self.blanks
        return Column(
            name=name,
            source=None if name == self.name else self.name,
            type=declared,
            nullable=not (rows and nonnull == rows),
        )


def _arrow_kind(t: pa.DataType, name: str, where: str) -> str:
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or _is(t, "is_string_view"):
        return "string"
    if pa.types.is_time(t):
        return "string"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or _is(t, "is_binary_view"):
        return "binary"
    if pa.types.is_fixed_size_list(t) and pa.types.is_floating(t.value_type):
        return "vector"
    if (
        pa.types.is_list(t) or pa.types.is_large_list(t) or _is(t, "is_list_view")
    ) and pa.types.is_floating(t.value_type):
        return "vector?"
    if pa.types.is_nested(t):
        return "json"
    raise ValueError(
        f"{where}: column {name!r} has Arrow type {t}, which no declared type fits "
        "(string, integer, float, boolean, date, timestamp, json or vector(N))"
    )


def _is(t: pa.DataType, check: str) -> bool:
    fn = getattr(pa.types, check, None)
    return bool(fn and fn(t))


class Sample:
    """The statistics of every column of the sample, fed batch by batch."""

    def __init__(self, family: str) -> None:
        self.family = family
        self.columns: dict[str, ColumnStats] = {}
        self.rows = 0

    def add(self, batch: Batch) -> None:
        for name, values in batch.columns.items():
            if WRITER_COLUMNS.fullmatch(name):
                continue  # pandas' index, not data of the table
            stats = self.columns.get(name)
            if stats is None:
                stats = self.columns[name] = ColumnStats(name, track_unique=self.rows == 0)
            if batch.fmt == "csv":
                stats.add_text(values)
            elif batch.fmt == "parquet":
                stats.add_arrow(values, str(batch.path))
            else:
                stats.add_json(values)
        if batch.num_rows:
            for name, stats in self.columns.items():
                if name not in batch.columns:
                    stats.unique = None  # missing from these rows: nulls
        self.rows += batch.num_rows

    def new_version(self) -> None:
        for stats in self.columns.values():
            if stats.unique is not None and not stats.unique.restart():
                stats.unique = None

    def end_file(self) -> None:
        for stats in self.columns.values():
            if stats.unique is not None and not stats.unique.check():
                stats.unique = None
