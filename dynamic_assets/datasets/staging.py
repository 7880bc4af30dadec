"""Streaming files into `ai_raw.<dataset>` staging with binary COPY.

CSV is parsed by Arrow on the client (all columns as text, so a bad value never aborts a load;
validation finds it), and each value of a column with a written form (`db.casts.csv_forms`) is
judged on the client as it streams (`judge_forms`, Arrow's RE2): a version whose every value is
in its form has its partition commented so (`forms_judged_note`), and its build skips the
server's regular expression pass; otherwise that pass finds the value and the diagnostics locate
it (file, row, column) in the staged text. JSON and JSON Lines land as one `jsonb` record per row, Parquet typed.
Every batch is encoded to Postgres' binary COPY format by `pgpq` on a worker thread while the
main thread sends the previous one, so parsing and the server's COPY run on both cores; a JSON
record of `LONG_RECORD` characters or more is a tuple of its own around its UTF-8 bytes, sent
from the line's own bytes when the reader passes it on unparsed. Memory stays bounded by the
batch size (and the longest record, held once unparsed, at most twice parsed) whatever the file
size. Each row carries its lineage: the
`onedrive_ingest` id of its file and its row (CSV, Parquet, JSON array) or line (JSON Lines).
The readers are told when the dataset is declared sensitive, and so is every `LoadError` raised
here: a refusal then names the file, the line or row and the reason, never a value.
A file offered with its listing (`SourceFile.listed`) is checked once read: the bytes read must
number its listed size, and the drive, asked again (`SourceFile.stat`), must show the listed size,
eTag and modified time; a file that moved meanwhile is refused as `FileChanged`.
"""

from __future__ import annotations

import bisect
import io
import math
import struct
import time
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from pgpq import ArrowToPostgresBinaryEncoder
from pgpq import encoders as pgpq_encoders
from pgpq import schema as pgpq_schema
from psycopg import sql

from dynamic_assets.db.casts import NON_FINITE_WORDS, csv_forms, forms_judged_note
from dynamic_assets.db.tables import (
    RAW_SCHEMA,
    RECORD_COLUMN,
    build_name,
    dataset_lock,
    ident,
    partition_name,
    swap_partition,
    table_columns,
    version_check,
)
from dynamic_assets.declarations.model import Dataset
from dynamic_assets.declarations.names import WRITER_COLUMNS
from dynamic_assets.drive.base import DriveItem
from dynamic_assets.formats import arrays
from dynamic_assets.formats.csv import HEADER_ONLY, CsvFile
from dynamic_assets.formats.errors import LoadError
from dynamic_assets.formats.hashing import HashingReader
from dynamic_assets.formats.json import (
    JSON_BATCH,
    LINE_PIECE,
    JsonRecord,
    UnparsedRecord,
    dumps,
    json_records_or_lines,
)
from dynamic_assets.formats.memory import return_freed_memory
from dynamic_assets.formats.parquet import (
    declared_arrow_type,
    open_parquet,
    parquet_batches,
    spool_parquet,
)
from dynamic_assets.formats.threads import ahead

if TYPE_CHECKING:  # it builds on `curated`, which reads staging
    from dynamic_assets.datasets.typed_build import TypedBuild

LINEAGE = [("_file_id", "bigint"), ("_row", "bigint")]


def staging_columns(ds: Dataset) -> list[tuple[str, str]]:
    """The data columns of the staging table (name, Postgres type), before the lineage columns."""
    if ds.family == "csv":
        return [(c.name, "text") for c in ds.columns]
    if ds.family == "json":
        return [(RECORD_COLUMN, "jsonb")]
    return [(c.name, declared_arrow_type(c)[1]) for c in ds.columns]


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
    """A file to load: its ingest record id, drive path, format, and how to open its bytes.

    `listed` is the file as the manifest recorded it and `stat` lists it again: with them the
    load is refused when the file changed between its listing and the end of its read."""

    file_id: int
    path: str
    format: str
    open: Callable[[], io.BufferedReader]
    listed: DriveItem | None = None
    stat: Callable[[], DriveItem] | None = None


class FileChanged(LoadError):
    """A file that changed between its listing and the end of its read (still being written or
    synced): nothing of it is loaded, and it is not quarantined, so the next run takes it as
    the drive then lists it."""

    REASON = "changed while it was read; it will be taken on the next run"

    def __init__(self, path: str, detail: str):
        super().__init__(path, self.REASON, detail=detail)


def changed_since_listing(f: SourceFile, read: int | None) -> str | None:
    """How the file differs from its listing, after `read` bytes of it were read (None when
    the read did not finish), or None when it is as listed (or was offered without a listing)."""
    listed = f.listed
    if listed is None:
        return None
    if read is not None and read != listed.size:
        return f"listed with {listed.size} bytes, {read} bytes read"
    if f.stat is None:
        return None
    try:
        now = f.stat()
    except FileNotFoundError:
        return "no longer in the drive"
    if now.size != listed.size:
        return f"listed with {listed.size} bytes, now {now.size} bytes"
    if now.etag != listed.etag or now.modified_at != listed.modified_at:
        return f"modified since it was listed (at {listed.modified_at.isoformat()})"
    return None


@dataclass(frozen=True)
class FileLoad:
    file_id: int
    path: str
    rows: int
    bytes: int
    sha256: str
    seconds: float
    source_types: dict[str, str] | None = None  # Parquet: the Arrow types the file declares
    forms_judged: bool = False  # CSV: every value of a column with a written form is in it


def load_version(
    conn: psycopg.Connection,
    ds: Dataset,
    version: str,
    files: list[SourceFile],
    *,
    typed: TypedBuild | None = None,
) -> list[FileLoad]:
    """Load every file of one version into a new table and swap it in as the version's partition.

    `conn` must be in autocommit mode; everything happens in one transaction, so a failure on any
    file leaves the previous staging partition as it was. Raises `LoadError` naming the file.
    `typed` (CSV): the version's typed table, streamed from the same batches on its own
    connection and checked before the staging commits; its caller commits or closes it.
    """
    return_freed_memory()
    ensure_staging_table(conn, ds)
    loads: list[FileLoad] = []
    if typed is not None:
        typed.start()
    with conn.transaction():
        built = build_name(ds.name, version)
        conn.execute(
            # UNLOGGED: staging is rebuilt from the drive, so it skips the write-ahead log
            # (a crash empties it; curated tables are logged and untouched). The version's
            # check, judged as each row goes in, spares a scan of the rows when it is attached.
            sql.SQL("CREATE UNLOGGED TABLE {} (LIKE {} INCLUDING DEFAULTS, {})").format(
                ident(RAW_SCHEMA, built),
                ident(RAW_SCHEMA, ds.name),
                version_check(built, version),
            )
        )
        conn.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN dataset_version SET DEFAULT {}").format(
                ident(RAW_SCHEMA, built), sql.Literal(version)
            )
        )
        for f in files:
            loads.append(_load_file(conn, built, ds, f, typed))
        if typed is not None:
            typed.finish([load.file_id for load in loads])
        conn.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN dataset_version DROP DEFAULT").format(
                ident(RAW_SCHEMA, built)
            )
        )
        note = forms_judged_note(ds)
        if note is not None and loads and all(load.forms_judged for load in loads):
            conn.execute(
                sql.SQL("COMMENT ON TABLE {} IS {}").format(
                    ident(RAW_SCHEMA, built), sql.Literal(note)
                )
            )
        swap_partition(conn, RAW_SCHEMA, ds.name, version, built, checked=True)
    return loads


def forms_judged(conn: psycopg.Connection, ds: Dataset, version: str) -> bool:
    """Whether staging found every value of the version's partition in its written form, under
    the forms `ds` declares now (the partition's comment, `forms_judged_note`)."""
    note = forms_judged_note(ds)
    if note is None:
        return False
    row = conn.execute(
        "SELECT obj_description(c.oid, 'pg_class') FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
        (RAW_SCHEMA, partition_name(ds.name, version)),
    ).fetchone()
    return row is not None and row[0] == note


def judge_forms(values: pa.Array, form: str, *, non_finite: bool = False) -> bool:
    """Whether every value of a staged text column is null, blank, or in `form` once the spaces
    around it are cut, as the build's pass reads it in Postgres (`db.casts.bad_text_value`:
    `NULLIF(btrim(v), '') ~ form`); with `non_finite`, a float's own words (any ASCII case) too.
    """
    trimmed = pc.utf8_trim(values, characters=" ")
    ok = pc.match_substring_regex(trimmed, form)
    if non_finite:
        ok = pc.or_(ok, pc.is_in(pc.ascii_lower(trimmed), arrays.strings(NON_FINITE_WORDS)))
    bad = pc.and_(pc.not_equal(trimmed, arrays.text("")), pc.invert(ok))
    return not pc.any(bad).as_py()


_NO_ROWS = {
    "csv": HEADER_ONLY,
    "json": "the file holds no JSON records",
    "parquet": "the Parquet file holds no rows",
}


def _load_file(
    conn: psycopg.Connection,
    table: str,
    ds: Dataset,
    f: SourceFile,
    typed: TypedBuild | None = None,
) -> FileLoad:
    """Load one file; refused as `FileChanged` when it moved since its listing, whether the read
    went through (its byte count or the drive's listing now differ) or failed (a half-written
    file often reads as a bad one: its refusal is then not the file's own)."""
    try:
        load = _read_file(conn, table, ds, f, typed)
    except FileChanged:
        raise
    except LoadError as exc:
        if moved := changed_since_listing(f, None):
            raise FileChanged(f.path, moved) from exc
        raise
    if moved := changed_since_listing(f, load.bytes):
        raise FileChanged(f.path, moved)
    return load


def _read_file(
    conn: psycopg.Connection,
    table: str,
    ds: Dataset,
    f: SourceFile,
    typed: TypedBuild | None = None,
) -> FileLoad:
    started = time.perf_counter()
    if ds.family == "csv":
        source = _csv_source(ds, f, typed)
    elif ds.family == "json":
        source = _json_source(ds, f)
    else:
        source = _parquet_source(ds, f)
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT binary)").format(
        ident(RAW_SCHEMA, table), sql.SQL(", ").join(sql.Identifier(n) for n in source.names)
    )
    try:
        rows = _pipe_copy(conn, copy_sql, source.produce)
    except psycopg.errors.DataError as exc:
        raise _copy_error(f.path, exc, ds.sensitive, source.located) from None
    except psycopg.Error as exc:
        raise LoadError(
            f.path,
            "the database refused the rows",
            detail=exc.diag.message_primary or str(exc),
            sensitive=ds.sensitive,
        ) from None
    if rows == 0:
        raise LoadError(f.path, _NO_ROWS[ds.family], line=2 if ds.family == "csv" else None)
    sha, size = source.finish()
    return FileLoad(
        f.file_id,
        f.path,
        rows,
        size,
        sha,
        time.perf_counter() - started,
        source.source_types,
        source.forms_judged,
    )


def _copy_error(
    path: str,
    exc: psycopg.Error,
    sensitive: bool,
    located: Callable[[int], dict[str, int]] | None = None,
) -> LoadError:
    """The refusal of a value by the COPY, at the file's row or line of the tuple Postgres names
    (its context says `line N` for the Nth tuple of the stream)."""
    ctx = exc.diag.context or ""
    where: dict[str, int] = {}
    marker = ", line "
    if marker in ctx:
        try:
            tuple_number = int(ctx.split(marker, 1)[1].split(",", 1)[0].split(":", 1)[0])
        except ValueError:
            pass
        else:
            where = located(tuple_number) if located else {"row": tuple_number}
    return LoadError(
        path,
        "value rejected by Postgres",
        **where,
        detail=exc.diag.message_primary or "",
        sensitive=sensitive,
    )


def _pipe_copy(
    conn: psycopg.Connection,
    copy_sql: sql.Composed,
    produce: Callable[[], Iterator[tuple[bytes, int]]],
) -> int:
    """Run `produce` (yielding encoded COPY chunks and their row counts) on a worker thread and
    send its chunks to the server from this one. Returns the number of rows sent."""
    rows = 0
    with (
        conn.cursor() as cur,
        cur.copy(copy_sql) as copy,
        ahead(produce(), depth=3, name="copy-encoder") as chunks,
    ):
        for data, n in chunks:
            copy.write(data)
            rows += n
    return rows


def _encoder(
    schema: pa.Schema, jsonb: AbstractSet[str] = frozenset()
) -> ArrowToPostgresBinaryEncoder:
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
        arrays.numbers(np.full(n, file_id, dtype=np.int64)),
        arrays.numbers(np.arange(start, start + n, dtype=np.int64)),
    ]


# ---------------------------------------------------------------- sources


@dataclass
class _Source:
    """What the COPY of one file needs: its column names, `produce` (yielding encoded COPY chunks
    and their row counts) and `finish` (the file's SHA-256 and size, once every row is sent)."""

    names: list[str]
    produce: Callable[[], Iterator[tuple[bytes, int]]]
    finish: Callable[[], tuple[str, int]]
    source_types: dict[str, str] | None = None  # Parquet: set by `produce`
    forms_judged: bool = False  # CSV: set by `produce` once every value was judged in its form
    # Where the COPY's Nth tuple is in the file ({"line": n} or {"row": n}); None: row N.
    located: Callable[[int], dict[str, int]] | None = None


def _lineage_schema(data: list[tuple[str, pa.DataType]]) -> pa.Schema:
    return pa.schema(data + [(n, pa.int64()) for n, _ in LINEAGE])


def _csv_source(ds: Dataset, f: SourceFile, typed: TypedBuild | None = None) -> _Source:
    """The header names the columns by their `source` (`Adj. Close*`); they are staged under
    their declared names (`adj_close`). Each batch whose values are all in their written forms
    goes to `typed` too."""
    schema = _lineage_schema([(c.name, pa.string()) for c in ds.columns])
    headers = [c.header for c in ds.columns]
    reader = CsvFile(
        f.path, f.open, headers, exact=ds.csv_header == "exact", sensitive=ds.sensitive
    )
    forms = [
        (i, form, c.type == "float")
        for i, c in enumerate(ds.columns)
        if (form := csv_forms(ds).get(c.name)) is not None
    ]

    def produce() -> Iterator[tuple[bytes, int]]:
        enc = _encoder(schema)
        yield enc.write_header(), 0
        start = 1
        judged = True
        for batch in reader.batches():
            n = batch.num_rows
            if not n:
                continue
            # Once a value is out of its form, the build's pass in Postgres finds and locates it.
            judged = judged and all(
                judge_forms(batch.column(i), form, non_finite=nf) for i, form, nf in forms
            )
            lineage = _lineage(f.file_id, start, n)
            if typed is not None:
                if judged:
                    typed.send(batch.columns, lineage)
                else:
                    typed.give_up("a value out of its written form")
            rb = pa.RecordBatch.from_arrays(batch.columns + lineage, schema=schema)
            yield enc.write_batch(rb), n
            start += n
        yield enc.finish(), 0
        source.forms_judged = judged

    source = _Source(schema.names, produce, reader.finish)
    return source


def _renamed_keys(ds: Dataset) -> dict[str, str]:
    """JSON keys to stage under another name: each declared column's `source` key, as its name."""
    return {c.source: c.name for c in ds.columns if c.source is not None and c.source != c.name}


def _json_text(record: JsonRecord, renamed: dict[str, str]) -> str:
    """The record's JSON text, its keys given their declared names; a key of the file that a
    renamed key takes the place of (the file's own `adj_close` beside `Adj. Close*`) is left
    out, so that the declared source is what the column holds."""
    if not renamed or not renamed.keys() & record.value.keys():
        return record.text
    targets = set(renamed.values())
    value = {
        renamed.get(k, k): v for k, v in record.value.items() if k in renamed or k not in targets
    }
    return dumps(value)


# Characters of JSON text from which a record is sent as a tuple of its own (the reader hands such
# a record over holding no reference to it).
LONG_RECORD = LINE_PIECE
COPY_PIECE = 1 << 20  # bytes of a long record sent at a time
BATCH_TEXT = 8 << 20  # characters of JSON text a batch holds at most (beside `JSON_BATCH` records)
# A binary COPY tuple of (_record jsonb, _file_id bigint, _row bigint): its field count, the jsonb
# field's length and version byte before the record's UTF-8 text, the two lineage fields after.
_RECORD_HEAD = struct.Struct("!hiB")
_RECORD_TAIL = struct.Struct("!iqiq")
_TRAILER = b"\xff\xff"  # the end of a binary COPY stream (a tuple of -1 fields)


def _json_source(ds: Dataset, f: SourceFile) -> _Source:
    schema = _lineage_schema([(RECORD_COLUMN, pa.string())])
    sensitive = ds.sensitive
    renamed = _renamed_keys(ds)
    state: dict = {}
    # Where each tuple is in the file, kept as the tuple numbers from which the record's number
    # (line or row) is the tuple's plus an offset that changed there (at blank lines): a few
    # entries whatever the file's size.
    shifts: list[tuple[int, int]] = []
    label = "line" if f.format == "jsonl" else "row"

    def located(tuple_number: int) -> dict[str, int]:
        at = bisect.bisect_right(shifts, (tuple_number, math.inf)) - 1
        return {label: tuple_number + (shifts[at][1] if at >= 0 else 0)}

    def produce() -> Iterator[tuple[bytes, int]]:
        stream = state["stream"] = HashingReader(f.open())
        enc = _encoder(schema, jsonb={RECORD_COLUMN})
        yield enc.write_header(), 0
        sent = 0  # tuples, in the order the server reads them
        texts: list[str] = []
        rows: list[int] = []
        held = 0  # characters in `texts`
        # Each record, then each batch's texts and its Arrow copy, are dropped as soon as they
        # are passed on; a batch ends at `JSON_BATCH` records or `BATCH_TEXT` characters. A long
        # record is not batched but sent as a COPY tuple of its own: a line the reader passes on
        # unparsed is sent from its bytes piece by piece, so that it is held once; a parsed one
        # (keys to rename, surrogate escapes) is encoded once to UTF-8, and held at most twice
        # at any time (bytes and text while decoded, text and value while parsed, text and
        # UTF-8 while encoded).
        records = json_records_or_lines(
            f.path,
            stream,
            f.format,
            sensitive=sensitive,
            long_unparsed=not renamed,
            # Written back by `dumps`, each number as it was: a record whose keys are renamed,
            # and every item of a JSON array.
            exact_numbers=bool(renamed) or f.format == "json",
        )
        for record in records:
            number = record.number
            sent += 1
            if number - sent != (shifts[-1][1] if shifts else 0):
                shifts.append((sent, number - sent))
            data: bytes | memoryview
            if isinstance(record, UnparsedRecord):
                data = record.data
                del record
            else:
                text = _json_text(record, renamed)
                del record
                if len(text) < LONG_RECORD:
                    held += len(text)
                    texts.append(text)
                    rows.append(number)
                    del text
                    if len(texts) >= JSON_BATCH or held >= BATCH_TEXT:
                        batch = _json_batch(schema, f.file_id, texts, rows)
                        n, texts, rows, held = len(texts), [], [], 0
                        data = enc.write_batch(batch)
                        del batch
                        yield data, n
                        del data
                    continue
                data = text.encode("utf-8")
                del text
            if texts:
                batch = _json_batch(schema, f.file_id, texts, rows)
                n, texts, rows, held = len(texts), [], [], 0
                yield enc.write_batch(batch), n
                del batch
            # pgpq holds back the tuples of small batches until its buffer fills: they go out
            # first (its stream without the trailer), and a new encoder goes on after the long
            # record, so that the server reads the tuples in the file's order.
            pending = enc.finish()
            assert pending.endswith(_TRAILER), "pgpq's stream ends with the COPY trailer"
            enc = _encoder(schema, jsonb={RECORD_COLUMN})
            enc.write_header()  # already sent
            yield pending[: -len(_TRAILER)], 0
            yield _RECORD_HEAD.pack(3, len(data) + 1, 1), 0
            for at in range(0, len(data), COPY_PIECE):
                yield bytes(data[at : at + COPY_PIECE]), 0
            del data
            yield _RECORD_TAIL.pack(8, f.file_id, 8, number), 1
        if texts:
            batch = _json_batch(schema, f.file_id, texts, rows)
            n, texts, rows = len(texts), [], []
            data = enc.write_batch(batch)
            del batch
            yield data, n
            del data
        yield enc.finish(), 0

    def finish() -> tuple[str, int]:
        return state["stream"].finish()

    return _Source(schema.names, produce, finish, located=located)


def _json_batch(schema, file_id: int, texts: list[str], rows: list[int]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [
            arrays.strings(texts),
            arrays.numbers(np.full(len(texts), file_id, dtype=np.int64)),
            arrays.numbers(np.asarray(rows, dtype=np.int64)),
        ],
        schema=schema,
    )


def _parquet_source(ds: Dataset, f: SourceFile) -> _Source:
    schema = _lineage_schema([(c.name, declared_arrow_type(c)[0]) for c in ds.columns])
    json_cols = {c.name for c in ds.columns if c.type == "json"}
    state: dict = {}

    def produce() -> Iterator[tuple[bytes, int]]:
        # Read from the drive once, hashed on the way; parsed by random access from the copy.
        copy, state["sha256"], state["size"] = spool_parquet(
            f.path, f.open(), sensitive=ds.sensitive
        )
        with copy:
            pfile = open_parquet(f.path, copy, sensitive=ds.sensitive)
            names = {c.header: c.name for c in ds.columns}
            source.source_types = {
                names.get(fld.name, fld.name): str(fld.type)
                for fld in pfile.schema_arrow
                if not WRITER_COLUMNS.fullmatch(fld.name)
            }
            enc = _encoder(schema, jsonb=json_cols)
            yield enc.write_header(), 0
            start = 1
            for batch in parquet_batches(f.path, pfile, ds.columns, sensitive=ds.sensitive):
                n = batch.num_rows
                rb = pa.RecordBatch.from_arrays(
                    batch.columns + _lineage(f.file_id, start, n), schema=schema
                )
                yield enc.write_batch(rb), n
                start += n
            yield enc.finish(), 0

    def finish() -> tuple[str, int]:
        return state["sha256"], state["size"]

    source = _Source(schema.names, produce, finish)
    return source
