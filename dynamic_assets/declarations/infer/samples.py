"""Sample files: found by extension, grouped by version folder, and read through the
`dynamic_assets.formats` readers (the loader's rules) as column-wise batches of at most
``limit`` rows a file."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from dynamic_assets.declarations.model import FILE_EXTENSIONS, FORMAT_FAMILIES
from dynamic_assets.declarations.names import is_version
from dynamic_assets.formats.csv import CsvFile
from dynamic_assets.formats.errors import (
    BrokenJsonArray,
    DuplicateColumns,
    LoadError,
    MalformedCsv,
    NotAnObject,
)
from dynamic_assets.formats.json import json_records
from dynamic_assets.formats.parquet import PARQUET_BATCH, open_parquet, parquet_batches

_JSON_CHUNK = 4096  # JSON rows handled column-wise in chunks of this many


def data_files(paths: Iterable[Path | str]) -> list[tuple[Path, str]]:
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


def one_family(files: list[tuple[Path, str]]) -> str:
    """The format family (csv, json, parquet) all the files share; refuses a mix."""
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


def version_of(path: Path) -> str | None:
    """The version folder a file is in (2024-06-01, v2.3, ...), if any."""
    return next((p.name for p in path.parents if is_version(p.name)), None)


def by_version(files: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
    """The files grouped by version folder, groups in order of first appearance.

    A primary key is unique within one version of a dataset (each version is its own partition),
    so uniqueness is checked version by version when the sample spans several.
    """
    order: dict[str | None, int] = {}
    for path, _ in files:
        order.setdefault(version_of(path), len(order))
    return sorted(files, key=lambda f: order[version_of(f[0])])


def file_names(files: list[tuple[Path, str]]) -> str:
    """The files' paths, for messages."""
    return ", ".join(str(p) for p, _ in files)


class Batch:
    """Rows of one file, column-wise: Arrow arrays (CSV, Parquet) or Python lists (JSON)."""

    def __init__(self, path: Path, fmt: str, num_rows: int, columns: dict[str, Any], where: dict):
        self.path = path
        self.fmt = fmt
        self.num_rows = num_rows
        self.columns = columns
        self.where = where  # column name -> where it first appears, for messages


def read_sample(path: Path, fmt: str, limit: int) -> Iterator[Batch]:
    """The batches of one sample file, at most `limit` rows; a file the loader would refuse for
    its shape or encoding is refused with a ValueError naming it."""
    try:
        if fmt == "csv":
            yield from _read_csv(path, limit)
        elif fmt == "parquet":
            yield from _read_parquet(path, limit)
        else:
            yield from _read_json(path, fmt, limit)
    except LoadError as exc:
        raise declare_error(exc) from exc


def _header(path: Path, names: list[str]) -> dict[str, str]:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{path}: column(s) named twice in the header: {dupes}")
    return {n: str(path) for n in names}


def _read_csv(path: Path, limit: int) -> Iterator[Batch]:
    reader = CsvFile(str(path), lambda: path.open("rb"))
    rows = 0
    try:
        # The first batch has no rows, so that a header-only file still declares its columns.
        for batch in reader.batches():
            if rows + batch.num_rows > limit:
                batch = batch.slice(0, limit - rows)
            rows += batch.num_rows
            names = batch.schema.names
            columns = {n: batch.column(i) for i, n in enumerate(names)}
            yield Batch(path, "csv", batch.num_rows, columns, {n: str(path) for n in names})
            if rows >= limit:
                return
        reader.finish()  # read to the end: a quote left open there is refused, as the loader does
    finally:
        reader.close()


def _read_parquet(path: Path, limit: int) -> Iterator[Batch]:
    pf = open_parquet(str(path), path)
    try:
        names = pf.schema_arrow.names
        where = _header(path, names)
        empty = {n: pa.array([], f.type) for n, f in zip(names, pf.schema_arrow, strict=True)}
        yield Batch(path, "parquet", 0, empty, where)
        rows = 0
        for batch in parquet_batches(str(path), pf, batch_size=min(limit, PARQUET_BATCH)):
            if rows + batch.num_rows > limit:
                batch = batch.slice(0, limit - rows)
            rows += batch.num_rows
            columns = {n: batch.column(i) for i, n in enumerate(names)}
            yield Batch(path, "parquet", batch.num_rows, columns, where)
            if rows >= limit:
                return
    finally:
        pf.close()


def _read_json(path: Path, fmt: str, limit: int) -> Iterator[Batch]:
    with path.open("rb") as stream:
        records = itertools.islice(json_records(str(path), stream, fmt), limit)
        while chunk := list(itertools.islice(records, _JSON_CHUNK)):
            where: dict[str, str] = {}
            for record in chunk:
                loc = f"line {record.line}" if record.line is not None else f"item {record.row}"
                for key in record.value:
                    where.setdefault(key, f"{path}: {loc}")
            columns = {key: [r.value.get(key) for r in chunk] for key in where}
            yield Batch(path, fmt, len(chunk), columns, where)


def declare_error(exc: LoadError) -> ValueError:
    """The refusal of a sample file in the words of the `declare` command."""
    path = exc.path
    if isinstance(exc, DuplicateColumns):
        return ValueError(f"{path}: column(s) named twice in the header: {exc.names}")
    if isinstance(exc, MalformedCsv):
        where = f"line {exc.line}: " if exc.line is not None else ""
        return ValueError(f"{path}: {where}not a readable CSV file ({exc.reason})")
    if isinstance(exc, NotAnObject):
        where = f"line {exc.line}" if exc.line is not None else f"item {exc.row}"
        return ValueError(f"{path}: {where}: expected a JSON object, found {_json_what(exc.value)}")
    if isinstance(exc, BrokenJsonArray):
        return ValueError(f"{path}: not valid JSON after item {exc.items} ({exc.detail})")
    return ValueError(exc.message)


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
