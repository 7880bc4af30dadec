"""Streaming files into `ai_raw.<dataset>` staging with binary COPY.

CSV is parsed by Arrow on the client (all columns as text, so a bad value never aborts a load;
validation finds it), JSON and JSON Lines land as one `jsonb` record per row, Parquet typed.
Every batch is encoded to Postgres' binary COPY format by `pgpq` on a worker thread while the
main thread sends the previous one, so parsing and the server's COPY run on both cores. Memory
stays bounded by the batch size whatever the file size. Each row carries its lineage: the
`onedrive_ingest` id of its file and its row (CSV, Parquet, JSON array) or line (JSON Lines).
"""

from __future__ import annotations

import csv
import io
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pgpq import ArrowToPostgresBinaryEncoder
from pgpq import encoders as pgpq_encoders
from pgpq import schema as pgpq_schema
from psycopg import sql

from dynamic_assets.db.tables import (
    RAW_SCHEMA,
    build_name,
    dataset_lock,
    ident,
    swap_partition,
    table_columns,
)
from dynamic_assets.declarations.model import Column, Dataset
from dynamic_assets.formats.errors import LoadError
from dynamic_assets.formats.hashing import HashingReader, sha256_stream

LINEAGE = [("_file_id", "bigint"), ("_row", "bigint")]
RECORD_COLUMN = "_record"
CSV_BLOCK = 1 << 20  # parse block: bounds memory; huge fields retry with CSV_BLOCK_LARGE
CSV_BLOCK_LARGE = 64 << 20
JSON_BATCH = 20_000
PARQUET_BATCH = 32_768

# Declared type -> (Arrow type on the wire, Postgres type of the typed staging column).
PARQUET_STAGING: dict[str, tuple[pa.DataType, str]] = {
    "string": (pa.string(), "text"),
    "integer": (pa.int64(), "bigint"),
    "float": (pa.float64(), "double precision"),
    "boolean": (pa.bool_(), "boolean"),
    "date": (pa.date32(), "date"),
    "timestamp": (pa.timestamp("us", tz="UTC"), "timestamp without time zone"),
    "json": (pa.string(), "jsonb"),
}


def _parquet_type(col: Column) -> tuple[pa.DataType, str]:
    if col.vector_dim:
        return pa.list_(pa.float32()), "real[]"
    return PARQUET_STAGING[col.type]


def staging_columns(ds: Dataset) -> list[tuple[str, str]]:
    """The data columns of the staging table (name, Postgres type), before the lineage columns."""
    if ds.family == "csv":
        return [(c.name, "text") for c in ds.columns]
    if ds.family == "json":
        return [(RECORD_COLUMN, "jsonb")]
    return [(c.name, _parquet_type(c)[1]) for c in ds.columns]


def ensure_staging_table(conn: psycopg.Connection, ds: Dataset) -> None:
    """Create `ai_raw.<dataset>` (partitioned by version), or add columns a declaration gained."""
    cols = [("dataset_version", "text"), *LINEAGE, *staging_columns(ds)]
    with conn.transaction():
        dataset_lock(conn, RAW_SCHEMA, ds.name)
        existing = table_columns(conn, RAW_SCHEMA, ds.name)
        if not existing:
            conn.execute(
                sql.SQL("CREATE TABLE {} ({}) PARTITION BY LIST (dataset_version)").format(
                    ident(RAW_SCHEMA, ds.name),
                    sql.SQL(", ").join(
                        sql.SQL(
                            "{} {} NOT NULL"
                            if n in ("dataset_version", "_file_id", "_row")
                            else "{} {}"
                        ).format(sql.Identifier(n), sql.SQL(t))
                        for n, t in cols
                    ),
                )
            )
            conn.execute(
                sql.SQL("COMMENT ON TABLE {} IS {}").format(
                    ident(RAW_SCHEMA, ds.name),
                    sql.Literal(
                        f"Staging for dataset {ds.name}: one partition per version, loaded by COPY."
                    ),
                )
            )
            return
        for name, typ in cols:
            if name not in existing:
                conn.execute(
                    sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                        ident(RAW_SCHEMA, ds.name), sql.Identifier(name), sql.SQL(typ)
                    )
                )


@dataclass(frozen=True)
class SourceFile:
    """A file to load: its ingest record id, drive path, format, and how to open its bytes."""

    file_id: int
    path: str
    format: str
    open: Callable[[], BinaryIO]


@dataclass(frozen=True)
class FileLoad:
    file_id: int
    path: str
    rows: int
    bytes: int
    sha256: str
    seconds: float
    source_types: dict[str, str] | None = None  # Parquet: the Arrow types the file declares


def load_version(
    conn: psycopg.Connection, ds: Dataset, version: str, files: list[SourceFile]
) -> list[FileLoad]:
    """Load every file of one version into a new table and swap it in as the version's partition.

    `conn` must be in autocommit mode; everything happens in one transaction, so a failure on any
    file leaves the previous staging partition as it was. Raises `LoadError` naming the file.
    """
    ensure_staging_table(conn, ds)
    loads: list[FileLoad] = []
    with conn.transaction():
        built = build_name(ds.name, version)
        conn.execute(
            # UNLOGGED: staging is rebuilt from the drive, so it skips the write-ahead log
            # (a crash empties it; curated tables are logged and untouched).
            sql.SQL("CREATE UNLOGGED TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(
                ident(RAW_SCHEMA, built), ident(RAW_SCHEMA, ds.name)
            )
        )
        conn.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN dataset_version SET DEFAULT {}").format(
                ident(RAW_SCHEMA, built), sql.Literal(version)
            )
        )
        for f in files:
            loads.append(_load_file(conn, built, ds, f))
        conn.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN dataset_version DROP DEFAULT").format(
                ident(RAW_SCHEMA, built)
            )
        )
        swap_partition(conn, RAW_SCHEMA, ds.name, version, built)
    return loads


_NO_ROWS = {
    "csv": "the file has a header but no data rows",
    "json": "the file holds no JSON records",
    "parquet": "the Parquet file holds no rows",
}


class _LargerBlocks(Exception):
    """A CSV field larger than the parse block: the file's COPY restarts with larger blocks."""


def _load_file(conn: psycopg.Connection, table: str, ds: Dataset, f: SourceFile) -> FileLoad:
    started = time.perf_counter()
    blocks = [CSV_BLOCK, CSV_BLOCK_LARGE] if ds.family == "csv" else [None]
    for attempt, block in enumerate(blocks):
        last = attempt == len(blocks) - 1
        if ds.family == "csv":
            names, produce, finish = _csv_source(ds, f, block, retry=not last)
        elif ds.family == "json":
            names, produce, finish = _json_source(f)
        else:
            names, produce, finish = _parquet_source(ds, f)
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT binary)").format(
            ident(RAW_SCHEMA, table), sql.SQL(", ").join(sql.Identifier(n) for n in names)
        )
        try:
            with conn.transaction():  # a savepoint: a restarted COPY leaves nothing behind
                rows = _pipe_copy(conn, copy_sql, produce)
        except _LargerBlocks:
            continue
        except psycopg.errors.DataError as exc:
            raise _copy_error(f.path, exc) from None
        except psycopg.Error as exc:
            raise LoadError(
                f.path, f"the database refused the rows: {exc.diag.message_primary or exc}"
            ) from None
        if rows == 0:
            raise LoadError(f.path, _NO_ROWS[ds.family], line=2 if ds.family == "csv" else None)
        sha, size = finish()
        types = getattr(finish, "source_types", None)
        return FileLoad(f.file_id, f.path, rows, size, sha, time.perf_counter() - started, types)
    raise LoadError(f.path, "a field is larger than the largest parse block")


def _copy_error(path: str, exc: psycopg.Error) -> LoadError:
    ctx = exc.diag.context or ""
    row = None
    marker = ", line "
    if marker in ctx:
        try:
            row = int(ctx.split(marker, 1)[1].split(",", 1)[0].split(":", 1)[0])
        except ValueError:
            row = None
    return LoadError(path, f"value rejected by Postgres: {exc.diag.message_primary}", row=row)


_DONE = object()


def _pipe_copy(
    conn: psycopg.Connection,
    copy_sql: sql.Composed,
    produce: Callable[[], Iterator[tuple[bytes, int]]],
) -> int:
    """Run `produce` (yielding encoded COPY chunks and their row counts) on a worker thread and
    send its chunks to the server from this one. Returns the number of rows sent."""
    q: queue.Queue = queue.Queue(maxsize=3)
    stop = threading.Event()

    def work() -> None:
        try:
            for item in produce():
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as exc:  # handed to the consumer thread
            q.put(exc)

    worker = threading.Thread(target=work, name="copy-encoder", daemon=True)
    rows = 0
    with conn.cursor() as cur:
        try:
            with cur.copy(copy_sql) as copy:
                worker.start()
                while True:
                    item = q.get()
                    if item is _DONE:
                        break
                    if isinstance(item, BaseException):
                        raise item
                    data, n = item
                    copy.write(data)
                    rows += n
        finally:
            stop.set()
            worker.join(timeout=10)
    return rows


def _encoder(schema: pa.Schema, jsonb: set[str] = frozenset()) -> ArrowToPostgresBinaryEncoder:
    if not jsonb:
        return ArrowToPostgresBinaryEncoder(schema)
    builders = {f.name: ArrowToPostgresBinaryEncoder.infer_encoder(f) for f in schema}
    for name in jsonb:
        builders[name] = pgpq_encoders.StringEncoderBuilder.new_with_output(
            schema.field(name), pgpq_schema.Jsonb()
        )
    return ArrowToPostgresBinaryEncoder.new_with_encoders(schema, builders)


def _lineage(file_id: int, start: int, n: int) -> list[pa.Array]:
    return [
        pa.array(np.full(n, file_id, dtype=np.int64)),
        pa.array(np.arange(start, start + n, dtype=np.int64)),
    ]


# ---------------------------------------------------------------- CSV


def _csv_source(ds: Dataset, f: SourceFile, block: int, *, retry: bool):
    names = [c.name for c in ds.columns]
    out_names = names + [n for n, _ in LINEAGE]
    schema = pa.schema([(n, pa.string()) for n in names] + [(n, pa.int64()) for n, _ in LINEAGE])
    state: dict = {}

    def open_reader(block: int):
        stream = HashingReader(f.open(), count=b'"')
        state["stream"] = stream
        try:
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(block_size=block, use_threads=True),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    column_types={n: pa.string() for n in names},
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,
                    null_values=[""],
                ),
            )
        except Exception:
            stream.close()
            raise
        return stream, reader

    def produce() -> Iterator[tuple[bytes, int]]:
        try:
            yield from _csv_batches(f, names, schema, open_reader, block, ds.csv_header == "exact")
        except pa.ArrowInvalid as exc:
            if "straddling" in str(exc) and retry:
                state["stream"].close()
                raise _LargerBlocks() from None
            raise _locate_csv_problem(f, names, str(exc)) from None
        except pa.ArrowException as exc:
            raise _locate_csv_problem(f, names, str(exc)) from None

    def finish() -> tuple[str, int]:
        stream = state["stream"]
        digest = stream.finish()
        if stream.counted % 2:
            # Arrow reads a quote left open to the end of the file as one long field; an odd
            # number of quote characters shows it. Confirm with a strict parser to name the line.
            problem = _locate_csv_problem(f, names, "", strict_only=True)
            if problem is not None:
                raise problem
        return digest

    return out_names, produce, finish


def _csv_batches(f, names, schema, open_reader, block, exact) -> Iterator[tuple[bytes, int]]:
    stream, reader = open_reader(block)
    header = reader.schema.names
    _check_header(f.path, header, names, exact)
    enc = _encoder(schema)
    yield enc.write_header(), 0
    start = 1
    for batch in reader:
        n = batch.num_rows
        if not n:
            continue
        arrays = [batch.column(name) for name in names] + _lineage(f.file_id, start, n)
        rb = pa.RecordBatch.from_arrays(arrays, schema=schema)
        yield enc.write_batch(rb), n
        start += n
    yield enc.finish(), 0


def _column_difference(present: list[str], names: list[str]) -> str | None:
    """`missing declared column(s) ...; undeclared column(s) ...`, or None when the sets agree."""
    missing = [n for n in names if n not in present]
    extra = [n for n in present if n not in names]
    parts = []
    if missing:
        parts.append(f"missing declared column(s) {', '.join(missing)}")
    if extra:
        parts.append(f"undeclared column(s) {', '.join(extra)}")
    return "; ".join(parts) or None


def _check_header(path: str, header: list[str], names: list[str], exact: bool = True) -> None:
    if not header or header == [""]:
        raise LoadError(path, "the file is empty: no header row", line=1)
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise LoadError(path, f"the header names column(s) twice: {', '.join(dupes)}", line=1)
    difference = _column_difference(header, names)
    if difference:
        raise LoadError(path, f"the header does not match the declaration: {difference}", line=1)
    if exact and header != names:
        raise LoadError(
            path,
            f"the columns are not in the declared order: found {', '.join(header)}; "
            f"declared {', '.join(names)} (declare `csv_header: by_name` to match columns by name)",
            line=1,
        )


def _locate_csv_problem(
    f: SourceFile, names: list[str], arrow_message: str, *, strict_only: bool = False
) -> LoadError | None:
    """Find the line of a CSV problem Arrow reported without one (error path only: re-reads the file).

    With `strict_only`, return None unless the strict parser finds a malformed record."""
    with f.open() as raw:
        for lineno, line in enumerate(raw, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return LoadError(
                    f.path,
                    f"not valid UTF-8 (byte 0x{line[exc.start]:02x} at column {exc.start + 1}); "
                    "save the file as UTF-8",
                    line=lineno,
                )
    with f.open() as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        reader = csv.reader(text, strict=True)
        start_line = 1
        try:
            header = next(reader, None)
            if header is None:
                return LoadError(f.path, "the file is empty: no header row", line=1)
            start_line = reader.line_num + 1
            for record in reader:
                if len(record) != len(header) and not strict_only:
                    return LoadError(
                        f.path,
                        f"expected {len(header)} fields, found {len(record)}",
                        line=start_line,
                    )
                start_line = reader.line_num + 1
        except csv.Error as exc:
            reason = str(exc)
            if "unexpected end of data" in reason or "EOF" in reason:
                reason = "a quoted field is never closed (unterminated quote)"
            return LoadError(f.path, f"malformed CSV: {reason}", line=start_line)
    if strict_only:
        return None
    return LoadError(f.path, f"cannot parse the CSV: {arrow_message}")


# ---------------------------------------------------------------- JSON / JSON Lines


class _Prefixed:
    """A byte stream with some already-read bytes put back in front."""

    def __init__(self, head: bytes, rest):
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

    def readline(self) -> bytes:
        if self._head:
            nl = self._head.find(b"\n")
            if nl >= 0:
                line, self._head = self._head[: nl + 1], self._head[nl + 1 :]
                return line
            line, self._head = self._head, b""
            return line + self._rest.readline()
        return self._rest.readline()

    def __iter__(self):
        while True:
            line = self.readline()
            if not line:
                return
            yield line


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed in JSON")


def _json_source(f: SourceFile):
    out_names = [RECORD_COLUMN] + [n for n, _ in LINEAGE]
    schema = pa.schema([(RECORD_COLUMN, pa.string())] + [(n, pa.int64()) for n, _ in LINEAGE])
    state: dict = {}

    def records() -> Iterator[tuple[int, str]]:
        stream = HashingReader(f.open())
        state["stream"] = stream
        head = stream.read(1 << 16)
        if head.startswith(b"\xef\xbb\xbf"):
            head = head[3:]
        first = head.lstrip()[:1]
        src = _Prefixed(head, stream)
        if not first:
            raise LoadError(f.path, "the file is empty: no JSON records", line=1)
        if first == b"[" and f.format == "json":
            yield from _json_array_records(f.path, src)
        elif first == b"{":
            yield from _json_lines_records(f.path, src, single_object_hint=f.format == "json")
        else:
            raise LoadError(
                f.path,
                "not a JSON array of objects nor JSON Lines (one object per line)",
                line=1,
            )

    def produce() -> Iterator[tuple[bytes, int]]:
        enc = _encoder(schema, jsonb={RECORD_COLUMN})
        yield enc.write_header(), 0
        texts: list[str] = []
        rows: list[int] = []
        for row, text in records():
            texts.append(text)
            rows.append(row)
            if len(texts) >= JSON_BATCH:
                yield _json_batch(enc, schema, f.file_id, texts, rows), len(texts)
                texts, rows = [], []
        if texts:
            yield _json_batch(enc, schema, f.file_id, texts, rows), len(texts)
        yield enc.finish(), 0

    def finish() -> tuple[str, int]:
        return state["stream"].finish()

    return out_names, produce, finish


def _json_batch(enc, schema, file_id: int, texts: list[str], rows: list[int]) -> bytes:
    rb = pa.RecordBatch.from_arrays(
        [
            pa.array(texts, pa.string()),
            pa.array(np.full(len(texts), file_id, dtype=np.int64)),
            pa.array(rows, pa.int64()),
        ],
        schema=schema,
    )
    return enc.write_batch(rb)


def _json_lines_records(
    path: str, src, *, single_object_hint: bool = False
) -> Iterator[tuple[int, str]]:
    for lineno, raw in enumerate(src, start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LoadError(
                path, f"not valid UTF-8 (byte 0x{line[exc.start]:02x})", line=lineno
            ) from None
        try:
            obj = json.loads(text, parse_constant=_reject_constant)
        except ValueError as exc:
            if single_object_hint and lineno == 1:
                raise LoadError(
                    path,
                    "not a JSON array of objects nor JSON Lines (one object per line): "
                    f"the file starts with an object spanning several lines ({exc})",
                    line=1,
                ) from None
            raise LoadError(path, f"not valid JSON ({exc})", line=lineno) from None
        if not isinstance(obj, dict):
            raise LoadError(
                path, f"each line must be a JSON object, found {type(obj).__name__}", line=lineno
            )
        if "\\u0000" in text:
            raise LoadError(
                path,
                "a string contains the NUL character (\\u0000), which Postgres cannot store",
                line=lineno,
            )
        yield lineno, text


def _json_array_records(path: str, src) -> Iterator[tuple[int, str]]:
    import ijson

    index = 0
    try:
        for obj in ijson.items(src, "item", use_float=True):
            index += 1
            if not isinstance(obj, dict):
                raise LoadError(
                    path, f"array item {index} is a {type(obj).__name__}, not an object", row=index
                )
            try:
                text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
            except ValueError as exc:
                raise LoadError(path, f"array item {index}: {exc}", row=index) from None
            if "\\u0000" in text or "\x00" in text:
                raise LoadError(
                    path,
                    "a string contains the NUL character, which Postgres cannot store",
                    row=index,
                )
            yield index, text
    except ijson.JSONError as exc:
        raise LoadError(
            path, f"not valid JSON after array item {index}: {exc}", row=index + 1
        ) from None
    except UnicodeDecodeError:
        raise LoadError(path, f"not valid UTF-8 after array item {index}", row=index + 1) from None


# ---------------------------------------------------------------- Parquet


def _parquet_source(ds: Dataset, f: SourceFile):
    names = [c.name for c in ds.columns]
    out_names = names + [n for n, _ in LINEAGE]
    targets = {c.name: _parquet_type(c)[0] for c in ds.columns}
    json_cols = {c.name for c in ds.columns if c.type == "json"}
    schema = pa.schema([(n, targets[n]) for n in names] + [(n, pa.int64()) for n, _ in LINEAGE])
    state: dict = {}

    def produce() -> Iterator[tuple[bytes, int]]:
        handle = f.open()
        state["handle"] = handle
        try:
            pfile = pq.ParquetFile(handle)
            file_schema = pfile.schema_arrow
        except Exception as exc:
            raise LoadError(
                f.path, f"not a readable Parquet file (truncated or corrupt?): {exc}"
            ) from None
        present = file_schema.names
        finish.source_types = {fld.name: str(fld.type) for fld in file_schema}
        difference = _column_difference(present, names)
        if difference:
            raise LoadError(
                f.path, f"the Parquet schema does not match the declaration: {difference}"
            )
        enc = _encoder(schema, jsonb=json_cols)
        yield enc.write_header(), 0
        start = 1
        try:
            batches = pfile.iter_batches(batch_size=PARQUET_BATCH, columns=names)
            for batch in batches:
                n = batch.num_rows
                arrays = []
                for name in names:
                    arrays.append(
                        _cast_column(
                            f.path,
                            name,
                            batch.column(name),
                            targets[name],
                            start,
                            name in json_cols,
                        )
                    )
                rb = pa.RecordBatch.from_arrays(
                    arrays + _lineage(f.file_id, start, n), schema=schema
                )
                yield enc.write_batch(rb), n
                start += n
        except LoadError:
            raise
        except (OSError, pa.ArrowException) as exc:
            raise LoadError(
                f.path, f"cannot read Parquet data near row {start}: {exc}", row=start
            ) from None
        yield enc.finish(), 0

    def finish() -> tuple[str, int]:
        handle = state.get("handle")
        if handle is not None:
            handle.close()
        with f.open() as again:  # Parquet is read by random access; hash it in one sequential pass
            return sha256_stream(again)

    return out_names, produce, finish


def _cast_column(
    path: str, name: str, arr: pa.Array, target: pa.DataType, start: int, is_json: bool
) -> pa.Array:
    if arr.type == target:
        return arr
    if is_json and not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return pa.array(
            [
                None if v is None else json.dumps(v, ensure_ascii=False, default=str)
                for v in arr.to_pylist()
            ],
            pa.string(),
        )
    try:
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        if (
            pa.types.is_timestamp(target)
            and pa.types.is_timestamp(arr.type)
            and arr.type.tz is None
        ):
            arr = arr.cast(pa.timestamp("us")).cast(target)
        return arr.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise LoadError(
            path,
            f"column {name}: cannot convert {arr.type} to the declared type ({exc})",
            row=start,
        ) from None
