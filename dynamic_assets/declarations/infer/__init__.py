"""Infer a dataset declaration from sample files: `dynamic-assets declare NAME --from PATH`.

A new dataset dropped into the drive can be taken in without hand-writing YAML: the sample files
are read (at most ``sample_rows`` rows of each, streaming, so memory stays bounded), and each
column gets a declared type, a nullability, and the dataset a primary key guess and a few sober
expectations. The result is a plain :class:`~dynamic_assets.declarations.model.Dataset` for a person to
review before it is saved.

How types are inferred:

* CSV: every cell is read as text and classified here (integer, float, boolean, ISO date,
  ISO timestamp, ``[0.1, 0.2, ...]`` vectors of constant length, else string); empty cells are
  nulls.
* JSON and JSON Lines: from the JSON values (ints, floats, bools, ISO date/timestamp strings,
  lists of numbers of constant length are vectors, other objects and arrays are json).
* Parquet: from the Arrow schema; only vector lengths and nulls are read from the data.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import ijson
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from dynamic_assets.declarations.model import (
    FILE_EXTENSIONS,
    FORMAT_FAMILIES,
    Column,
    Dataset,
    Declarations,
    Expectation,
)
from dynamic_assets.declarations.names import check_column_name, check_dataset_name, is_version

__all__ = ["add_to_declarations", "infer_dataset"]

# Guesses are made from what a sample shows; these bound how far they go.
MAX_VECTOR_DIM = 16_000  # pgvector's limit for the vector type
LOW_CARDINALITY = 20  # at most this many distinct values for an in-set expectation ...
LOW_CARDINALITY_MIN_VALUES = 50  # ... seen in at least this many non-null values
LOW_CARDINALITY_MAX_LEN = 64  # longer strings are text, not categories
COMPOSITE_KEY_CANDIDATES = 5  # composite keys are pairs among the first 5 eligible columns
_JSON_CHUNK = 4096  # JSON rows handled column-wise in chunks of this many
_UNIQUE_CHECK_EVERY = 1_000_000  # keys buffered before a uniqueness check
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

_CAMEL_ID = re.compile(r"^.*[a-z0-9](Id|ID)$")
_SNAKE_ID = re.compile(r"^(.*[_\- ])?(id|ID|Id)$")


# --------------------------------------------------------------------------------------------
# Public API


def infer_dataset(name: str, paths: Iterable[Path | str], *, sample_rows: int = 100_000) -> Dataset:
    """Infers the declaration of dataset ``name`` from sample files or folders of them.

    Raises ValueError, naming the file (and line or item where it applies), when the files cannot
    be read, mix format families, or carry a column name the pipeline refuses.
    """
    check_dataset_name(name)
    if sample_rows < 1:
        raise ValueError(f"sample_rows must be at least 1, not {sample_rows}")
    files = _data_files(paths)
    family = _one_family(files)

    files = _by_version(files)
    sample = _Sample(family)
    group = None
    for path, fmt in files:
        if _version_of(path) != group:
            group = _version_of(path)
            sample.new_version()
        for batch in _read(path, fmt, sample_rows):
            sample.add(batch)
        sample.end_file()

    columns = [stats.to_column(family, sample.rows) for stats in sample.columns.values()]
    if not columns:
        raise ValueError(f"no columns found in {_names(files)}: the sample files are empty")
    primary_key = _guess_primary_key(sample, columns, files, sample_rows)
    return Dataset(
        name=name,
        description=(
            f"Declared from {len(files)} sample file(s) ({sample.rows} row(s) read); "
            "review the types, primary key and expectations."
        ),
        formats=sorted({fmt for _, fmt in files}),
        columns=columns,
        primary_key=primary_key,
        expectations=_expectations(sample, columns, primary_key),
        sensitivity="internal",
    )


def add_to_declarations(
    decls: Declarations, dataset: Dataset, *, replace: bool = False
) -> Declarations:
    """A new Declarations with ``dataset`` added, or put in place of the one of the same name."""
    names = [d.name for d in decls.datasets]
    if dataset.name in names:
        if not replace:
            raise ValueError(
                f"dataset {dataset.name!r} is already declared; pass --replace to overwrite "
                "its declaration"
            )
        datasets = [dataset if d.name == dataset.name else d for d in decls.datasets]
    else:
        datasets = [*decls.datasets, dataset]
    return Declarations(datasets=datasets, models=list(decls.models))


# --------------------------------------------------------------------------------------------
# Files


def _data_files(paths: Iterable[Path | str]) -> list[tuple[Path, str]]:
    """The data files named or found (recursively) in the folders named, with their format."""
    if isinstance(paths, str | Path):
        paths = [paths]
    found: list[tuple[Path, str]] = []
    seen: set[Path] = set()

    def take(path: Path, fmt: str) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.append((path, fmt))

    given = [Path(p) for p in paths]
    if not given:
        raise ValueError("no sample files given")
    for path in given:
        if path.is_dir():
            before = len(found)
            for child in sorted(path.rglob("*")):
                rel = child.relative_to(path).parts
                if any(part.startswith((".", "~$")) for part in rel) or not child.is_file():
                    continue
                fmt = FILE_EXTENSIONS.get(child.suffix.lower())
                if fmt:
                    take(child, fmt)
            if len(found) == before:
                raise ValueError(
                    f"{path}: no data files in this folder (looked for "
                    f"{', '.join(sorted(FILE_EXTENSIONS))})"
                )
        elif path.is_file():
            fmt = FILE_EXTENSIONS.get(path.suffix.lower())
            if not fmt:
                raise ValueError(
                    f"{path}: not a data file: use one of {', '.join(sorted(FILE_EXTENSIONS))}"
                )
            take(path, fmt)
        else:
            raise ValueError(f"{path}: no such file or folder")
    return found


def _one_family(files: list[tuple[Path, str]]) -> str:
    by_family: dict[str, list[Path]] = {}
    for path, fmt in files:
        by_family.setdefault(FORMAT_FAMILIES[fmt], []).append(path)
    if len(by_family) > 1:
        detail = "; ".join(
            f"{family}: {', '.join(str(p) for p in ps)}" for family, ps in sorted(by_family.items())
        )
        raise ValueError(
            "the sample files mix format families, but a dataset is CSV, JSON/JSONL or Parquet "
            f"so that one staging table fits all its files ({detail})"
        )
    return next(iter(by_family))


def _version_of(path: Path) -> str | None:
    """The version folder a file is in (2024-06-01, v2.3, ...), if any."""
    return next((p.name for p in path.parents if is_version(p.name)), None)


def _by_version(files: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
    """The files grouped by version folder, groups in order of first appearance.

    A primary key is unique within one version of a dataset (each version is its own partition),
    so uniqueness is checked version by version when the sample spans several.
    """
    order: dict[str | None, int] = {}
    for path, _ in files:
        order.setdefault(_version_of(path), len(order))
    return sorted(files, key=lambda f: order[_version_of(f[0])])


def _names(files: list[tuple[Path, str]]) -> str:
    return ", ".join(str(p) for p, _ in files)


# --------------------------------------------------------------------------------------------
# Readers: each yields batches {column name: values}, at most `limit` rows per file.


class _Batch:
    """Rows of one file, column-wise: Arrow arrays (CSV, Parquet) or Python lists (JSON)."""

    def __init__(self, path: Path, fmt: str, num_rows: int, columns: dict[str, Any], where: dict):
        self.path = path
        self.fmt = fmt
        self.num_rows = num_rows
        self.columns = columns
        self.where = where  # column name -> where it first appears, for messages


def _read(path: Path, fmt: str, limit: int) -> Iterator[_Batch]:
    if fmt == "csv":
        return _read_csv(path, limit)
    if fmt == "parquet":
        return _read_parquet(path, limit)
    if fmt == "json" and _first_byte(path) == b"{":
        rows = _jsonl_rows(path, limit)  # the loader reads a .json file of objects as JSON Lines
    else:
        rows = _jsonl_rows(path, limit) if fmt == "jsonl" else _json_array_rows(path, limit)
    return _json_batches(path, fmt, rows)


def _first_byte(path: Path) -> bytes:
    with path.open("rb") as f:
        head = f.read(1 << 16)
    return head.removeprefix(b"\xef\xbb\xbf").lstrip()[:1]


def _header(path: Path, names: list[str]) -> dict[str, str]:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{path}: column(s) named twice in the header: {dupes}")
    return {n: str(path) for n in names}


_CSV_PARSE = pacsv.ParseOptions(newlines_in_values=True)


def _read_csv(path: Path, limit: int) -> Iterator[_Batch]:
    try:
        # A first open reads only the header block, for the column names, so that the second can
        # read every column as text and the types be inferred here from the values. The options
        # are the loader's: an empty cell is null, a quoted empty string ("") is not.
        probe = pacsv.open_csv(path, parse_options=_CSV_PARSE)
        names = probe.schema.names
        probe.close()
        where = _header(path, names)
        reader = pacsv.open_csv(
            path,
            parse_options=_CSV_PARSE,
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise _csv_error(path, exc) from exc
    rows = 0
    try:
        # An empty batch first, so that a header-only file still declares its columns.
        yield _Batch(path, "csv", 0, {n: pa.array([], pa.string()) for n in names}, where)
        while rows < limit:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowInvalid as exc:
                raise _csv_error(path, exc) from exc
            if rows + batch.num_rows > limit:
                batch = batch.slice(0, limit - rows)
            rows += batch.num_rows
            columns = {n: batch.column(i) for i, n in enumerate(names)}
            yield _Batch(path, "csv", batch.num_rows, columns, where)
    finally:
        reader.close()


def _csv_error(path: Path, exc: Exception) -> ValueError:
    """A CSV parse error with the line where it happened (Arrow does not give it)."""
    message = str(exc).strip()
    if "Empty CSV file" in message:
        return ValueError(f"{path}: empty CSV file, not even a header line")
    line = None
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            width = len(next(reader, []))
            for record in reader:
                if len(record) != width:
                    line = reader.line_num
                    break
    except (OSError, UnicodeDecodeError, csv.Error):
        pass
    where = f"line {line}: " if line else ""
    return ValueError(f"{path}: {where}not a readable CSV file ({message.splitlines()[0]})")


def _read_parquet(path: Path, limit: int) -> Iterator[_Batch]:
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path}: not a readable Parquet file ({exc})") from exc
    try:
        names = pf.schema_arrow.names
        where = _header(path, names)
        empty = {n: pa.array([], f.type) for n, f in zip(names, pf.schema_arrow, strict=True)}
        yield _Batch(path, "parquet", 0, empty, where)
        rows = 0
        batches = pf.iter_batches(batch_size=min(limit, 65_536))
        while rows < limit:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except (pa.ArrowException, OSError) as exc:
                raise ValueError(f"{path}: not a readable Parquet file ({exc})") from exc
            if rows + batch.num_rows > limit:
                batch = batch.slice(0, limit - rows)
            rows += batch.num_rows
            columns = {n: batch.column(i) for i, n in enumerate(names)}
            yield _Batch(path, "parquet", batch.num_rows, columns, where)
    finally:
        pf.close()


def _jsonl_rows(path: Path, limit: int) -> Iterator[tuple[str, dict]]:
    count = 0
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            if count >= limit:
                return
            try:
                text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(
                    f"{path}: line {lineno}: not valid UTF-8 ({exc.reason} at byte {exc.start})"
                ) from exc
            if not text.strip():
                continue
            try:
                obj = json.loads(text, parse_constant=_reject_constant)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"{path}: line {lineno}: not valid JSON ({exc.msg} at column {exc.colno})"
                ) from exc
            except ValueError as exc:
                raise ValueError(f"{path}: line {lineno}: not valid JSON ({exc})") from exc
            if not isinstance(obj, dict):
                raise ValueError(
                    f"{path}: line {lineno}: expected a JSON object, found {_json_what(obj)}"
                )
            count += 1
            yield f"line {lineno}", obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _json_array_rows(path: Path, limit: int) -> Iterator[tuple[str, dict]]:
    with path.open("rb") as f:
        if f.read(3) != b"\xef\xbb\xbf":
            f.seek(0)
        events = ijson.parse(f, use_float=True)
        index = 0
        try:
            first = next(events, None)
            if first is None:
                raise ValueError(f"{path}: empty file, expected a JSON array of objects")
            if first[1] != "start_array":
                raise ValueError(
                    f"{path}: expected a JSON array of objects (or JSON Lines, one object a "
                    f"line), found {_event_what(first[1])} at the top level"
                )
            for obj in ijson.items(itertools.chain([first], events), "item"):
                index += 1
                if not isinstance(obj, dict):
                    raise ValueError(
                        f"{path}: item {index}: expected a JSON object, found {_json_what(obj)}"
                    )
                yield f"item {index}", obj
                if index >= limit:
                    return
        except (ijson.JSONError, UnicodeDecodeError) as exc:
            raise ValueError(
                f"{path}: not valid JSON after item {index} ({_first_line(exc)})"
            ) from exc


def _first_line(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else ""
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    lines = str(detail).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _json_what(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


_EVENT_WHAT = {
    "start_map": "an object",
    "string": "a string",
    "number": "a number",
    "boolean": "a boolean",
    "null": "null",
}


def _event_what(event: str) -> str:
    return _EVENT_WHAT.get(event, event)


def _json_batches(path: Path, fmt: str, rows: Iterator[tuple[str, dict]]) -> Iterator[_Batch]:
    while True:
        chunk = list(itertools.islice(rows, _JSON_CHUNK))
        if not chunk:
            return
        where: dict[str, str] = {}
        for loc, row in chunk:
            for key in row:
                if key not in where:
                    where[key] = f"{path}: {loc}"
        columns = {key: [row.get(key) for _, row in chunk] for key in where}
        yield _Batch(path, fmt, len(chunk), columns, where)


# --------------------------------------------------------------------------------------------
# Value classification


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


# --------------------------------------------------------------------------------------------
# Statistics


class _UniqueKeys:
    """Whether 64-bit keys are all distinct so far: 8 bytes a key, checked every so often."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.pending = 0
        self.ok = True

    def add(self, keys: np.ndarray) -> None:
        if not self.ok:
            return
        self.chunks.append(keys)
        self.pending += len(keys)
        if self.pending >= _UNIQUE_CHECK_EVERY:
            self.check()

    def check(self) -> bool:
        if self.ok and len(self.chunks) > 0 and self.pending:
            keys = np.concatenate(self.chunks) if len(self.chunks) > 1 else self.chunks[0]
            if np.unique(keys).size != keys.size:
                self.ok = False
                self.chunks = []
            else:
                self.chunks = [keys]
            self.pending = 0
        return self.ok

    def restart(self) -> bool:
        """Starts a new version: keys seen so far no longer count. Returns whether still unique."""
        ok = self.check()
        self.chunks = []
        return ok


def _keys(values: Any) -> np.ndarray:
    """64-bit keys of non-null values: equal values get equal keys (within one run)."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        t = values.type
        if pa.types.is_dictionary(t):
            values = values.dictionary_decode()
            t = values.type
        if pa.types.is_integer(t) or pa.types.is_boolean(t):
            return np.asarray(pc.cast(values, pa.int64(), safe=False).to_numpy(), np.int64)
        if pa.types.is_timestamp(t):
            values = pc.cast(values, pa.timestamp("us", t.tz), safe=False)
            return np.asarray(pc.cast(values, pa.int64()).to_numpy(), np.int64)
        if pa.types.is_date(t):
            values = pc.cast(pc.cast(values, pa.date32()), pa.int32())
            return np.asarray(values.to_numpy(), np.int64)
        values = values.to_pylist()
    return np.fromiter((hash(v) for v in values), np.int64, len(values))


class _ColumnStats:
    def __init__(self, name: str, track_unique: bool) -> None:
        self.name = name
        self.nonnull = 0
        self.blanks = 0  # CSV cells of only spaces or a quoted "": text, or nulls once typed
        self.kinds: set[str] = set()
        self.lengths: set[int] = set()
        self.minimum: float | None = None
        self.distinct: set[str] | None = set()
        self.unique: _UniqueKeys | None = _UniqueKeys() if track_unique else None

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
            self.unique.add(_keys(values))

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
                if ok:
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

    def to_column(self, family: str, rows: int) -> Column:
        declared = _resolve(self.kinds, self.lengths, family)
        nonnull = self.nonnull if declared == "string" else self.nonnull - self.blanks
        return Column(name=self.name, type=declared, nullable=not (rows and nonnull == rows))


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


class _Sample:
    def __init__(self, family: str) -> None:
        self.family = family
        self.columns: dict[str, _ColumnStats] = {}
        self.rows = 0

    def add(self, batch: _Batch) -> None:
        for name, values in batch.columns.items():
            stats = self.columns.get(name)
            if stats is None:
                where = batch.where.get(name, str(batch.path))
                try:
                    check_column_name(name)
                except ValueError as exc:
                    raise ValueError(f"{where}: {exc}") from exc
                stats = self.columns[name] = _ColumnStats(name, track_unique=self.rows == 0)
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


# --------------------------------------------------------------------------------------------
# Primary key and expectations


def _is_id_name(name: str) -> bool:
    return bool(_SNAKE_ID.match(name) or _CAMEL_ID.match(name))


def _mix(keys: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: spreads 64-bit keys so that pairs of them combine well."""
    z = keys.view(np.uint64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _guess_primary_key(
    sample: _Sample, columns: list[Column], files: list[tuple[Path, str]], sample_rows: int
) -> list[str]:
    """A primary key the sample does not contradict, or [] when there is no good guess.

    In order: a unique column named ``id`` or ``*_id``/``*Id``; else the unique integer or string
    column, or the unique pair among the first few non-null, non-float columns, that ends earliest
    in the column order (a single column first when both end at the same place). Key columns
    usually lead a table, so a pair like [date, symbol] wins over a ``volume`` column that
    happens to be unique in the sample.
    """
    if not sample.rows:
        return []

    def unique(col: Column) -> bool:
        stats = sample.columns[col.name]
        return (
            not col.nullable
            and col.type in ("integer", "string")
            and stats.unique is not None
            and stats.unique.check()
        )

    ids = [c for c in columns if _is_id_name(c.name) and unique(c)]
    if ids:
        exact = [c for c in ids if c.name.lower() == "id"]
        return [(exact or ids)[0].name]
    if sample.rows < 2:
        return []  # one row is unique in every column: no evidence

    position = {c.name: i for i, c in enumerate(columns)}
    single = next((c.name for c in columns if unique(c)), None)
    candidates = [
        c.name
        for c in columns
        if not c.nullable and c.type in ("integer", "string", "boolean", "date", "timestamp")
    ][:COMPOSITE_KEY_CANDIDATES]
    pairs = sorted(
        (
            (a, b)
            for a, b in itertools.combinations(candidates, 2)
            if single is None or position[b] < position[single]
        ),
        key=lambda ab: (position[ab[1]], position[ab[0]]),
    )
    if not pairs:
        return [single] if single else []

    # A second pass over the same sample, keeping only the keys of the candidate pairs.
    needed = sorted({n for pair in pairs for n in pair}, key=position.__getitem__)
    trackers = {pair: _UniqueKeys() for pair in pairs}
    group = None
    for path, fmt in files:
        if _version_of(path) != group:
            group = _version_of(path)
            for tracker in trackers.values():
                tracker.restart()
        for batch in _read(path, fmt, sample_rows):
            keys = {n: _keys(batch.columns[n]) for n in needed}
            mixed = {n: _mix(k) for n, k in keys.items()}
            for (a, b), tracker in trackers.items():
                tracker.add(_mix(mixed[a] ^ keys[b].view(np.uint64)).view(np.int64))
        for tracker in trackers.values():
            tracker.check()
    for pair, tracker in trackers.items():
        if tracker.check():
            return list(pair)
    return [single] if single else []


def _expectations(
    sample: _Sample, columns: list[Column], primary_key: list[str]
) -> list[Expectation]:
    found = [Expectation(type="expect_table_row_count_to_be_between", min_value=1)]
    for col in columns:
        stats = sample.columns[col.name]
        if col.type in ("integer", "float") and stats.minimum is not None and stats.minimum >= 0:
            found.append(
                Expectation(type="expect_column_values_to_be_between", column=col.name, min_value=0)
            )
        elif (
            col.type == "string"
            and col.name not in primary_key
            and stats.distinct
            and stats.nonnull >= LOW_CARDINALITY_MIN_VALUES
            and all(len(v) <= LOW_CARDINALITY_MAX_LEN for v in stats.distinct)
        ):
            found.append(
                Expectation(
                    type="expect_column_values_to_be_in_set",
                    column=col.name,
                    value_set=sorted(stats.distinct),
                )
            )
    return found
