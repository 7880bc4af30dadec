"""The typed table of a CSV version, built while the version stages.

Staging reads each CSV file once, in Arrow batches, and sends them as text to `ai_raw` (the text
staging, which locates any bad value by file, row and column). A `TypedBuild` takes the same
batches, once their values are judged in their written forms, and streams them on a second
connection by `COPY ... (FORMAT csv)` into the version's typed table in `ai_curated`: Postgres
reads each value with its type's input function, which is what the build's cast
(`(NULLIF(btrim(v), ''))::type`, `db.casts.cast_expression`) does, under the same session
settings (`TimeZone` UTC). The spaces around a typed value are cut and a blank one is sent as
NULL, here, as the cast's `NULLIF(btrim(...))` does; strings go as they are. Both COPY streams
run side by side, on two server processes, so the typed table costs the run no second pass over
the data (`INSERT ... SELECT` of the casts).

It gives up at the first batch with a value out of its written form, a value Postgres refuses,
a duplicate key or a NaN where none is allowed: the typed table is then built from the text
staging as before (`curated.build_version`), whose refusals name file, row and column. Only a
table built from every staged row, checked like `curated.build_version` checks its own and
recorded in `curated_builds`, is kept, and only once the staging it was built beside committed.
"""

from __future__ import annotations

import queue
import threading
from datetime import date, timedelta

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg import sql

from dynamic_assets.datasets.curated import (
    Build,
    discard_build,
    ensure_curated_table,
    keyed_and_finite,
)
from dynamic_assets.db.connection import connect
from dynamic_assets.db.tables import CURATED_SCHEMA, build_name, ident
from dynamic_assets.declarations.model import Dataset
from dynamic_assets.formats.arrays import null, text

# Declared types whose text Postgres reads in COPY exactly as the build's cast reads it.
TYPES = frozenset({"string", "integer", "float", "date", "timestamp", "boolean", "json"})
_DONE = object()
_CSV = pacsv.WriteOptions(include_header=False, quoting_style="needed")


def typed_build_possible(ds: Dataset) -> bool:
    """Whether a version of `ds` can be built while it stages: CSV with no vector column."""
    return ds.family == "csv" and all(c.type in TYPES and not c.vector_dim for c in ds.columns)


class TypedBuild:
    """One version's typed table, streamed from the batches staging judged (see the module)."""

    def __init__(self, uri: str, ds: Dataset, version: str):
        self.ds, self.version = ds, version
        self.failed: str | None = None
        self.rows = 0
        self._uri = uri
        self._conn: psycopg.Connection | None = None
        self._table = build_name(ds.name, version)
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._checked = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Create the table and start its COPY (in a transaction of its own connection)."""
        ds = self.ds
        with connect(self._uri, autocommit=True) as setup:
            ensure_curated_table(setup, ds)
        conn = self._conn = connect(self._uri)
        target = ident(CURATED_SCHEMA, self._table)
        retain = (
            sql.Literal(date.today() + timedelta(days=ds.retention_days))
            if ds.retention_days
            else sql.NULL
        )
        conn.execute("SET LOCAL TimeZone = 'UTC'")
        conn.execute("SET LOCAL DateStyle = 'ISO, YMD'")
        conn.execute(
            sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(
                target, ident(CURATED_SCHEMA, ds.name)
            )
        )
        # Read through the parent only (its policies): the partition has no grants and no policy.
        conn.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(target))
        for column, value in (
            ("dataset_version", sql.Literal(self.version)),
            ("_schema_version", sql.Literal(ds.schema_version)),
            ("_retain_until", retain),
        ):
            conn.execute(
                sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {}").format(
                    target, sql.Identifier(column), value
                )
            )
        names = [c.name for c in ds.columns] + ["_source_file_id", "_source_row"]
        statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
            target, sql.SQL(", ").join(sql.Identifier(n) for n in names)
        )
        self._thread = threading.Thread(
            target=self._copy, args=(statement,), name="typed-build", daemon=True
        )
        self._thread.start()

    def send(self, columns: list[pa.Array], lineage: list[pa.Array]) -> None:
        """One judged batch of staged columns (in declared order) and its file id and rows;
        the COPY's own thread encodes it, beside the thread that encodes the text staging."""
        while self.failed is None:
            try:
                self._queue.put((columns, lineage), timeout=0.2)
                self.rows += len(lineage[0])
                return
            except queue.Full:
                continue

    def _encode(self, columns: list[pa.Array], lineage: list[pa.Array]) -> bytes:
        arrays = []
        for col, values in zip(self.ds.columns, columns, strict=True):
            if col.type != "string":
                trimmed = pc.utf8_trim(values, characters=" ")
                values = pc.if_else(pc.equal(trimmed, text("")), null(pa.string()), trimmed)
            arrays.append(values)
        batch = pa.RecordBatch.from_arrays(
            arrays + lineage, names=[str(i) for i in range(len(arrays) + len(lineage))]
        )
        sink = pa.BufferOutputStream()
        pacsv.write_csv(batch, sink, _CSV)
        return sink.getvalue().to_pybytes()

    def give_up(self, reason: str) -> None:
        """Stop building: the typed table will be built from the text staging."""
        if self.failed is None:
            self.failed = reason
        self._stop.set()

    def finish(self, file_ids: list[int]) -> None:
        """End the COPY and check the table as a build is checked (inside its transaction)."""
        self._end_copy()
        if self.failed is not None or self._conn is None:
            return
        ds, conn = self.ds, self._conn
        target = ident(CURATED_SCHEMA, self._table)
        try:
            for column in ("dataset_version", "_schema_version", "_retain_until"):
                conn.execute(
                    sql.SQL("ALTER TABLE {} ALTER COLUMN {} DROP DEFAULT").format(
                        target, sql.Identifier(column)
                    )
                )
            if not keyed_and_finite(conn, ds, target):
                self.give_up("NaN or infinite values in a column that does not allow them")
                return
            discard_build(conn, ds, self.version)  # an earlier table of the version
            conn.execute(
                "INSERT INTO public.curated_builds (dataset, version, table_name, file_ids, rows) "
                "VALUES (%s, %s, %s, %s, %s)",
                (ds.name, self.version, self._table, sorted(file_ids), self.rows),
            )
            self._checked = True
        except psycopg.Error as exc:
            self.give_up(type(exc).__name__)

    def commit(self, file_ids: list[int]) -> Build | None:
        """Keep the table (the staging beside it committed); None when it was given up."""
        conn = self._conn
        if conn is None:
            return None
        try:
            if not self._checked or self.failed is not None:
                conn.rollback()
                return None
            conn.commit()
            self._conn = None
            conn.autocommit = True
            conn.execute(sql.SQL("ANALYZE {}").format(ident(CURATED_SCHEMA, self._table)))
            return Build(self._table, sorted(file_ids), self.rows)
        except psycopg.Error:
            return None
        finally:
            if not conn.closed:
                conn.close()
            self.close()

    def close(self) -> None:
        """Roll back whatever is not committed (a failed staging, an error)."""
        if self._conn is not None:
            self.give_up("the staging beside it did not commit")
        self._end_copy()
        if self._conn is not None and not self._conn.closed:
            self._conn.close()  # rolls back an open transaction
        self._conn = None

    # ------------------------------------------------------------------ the COPY

    def _end_copy(self) -> None:
        if self._thread is None:
            return
        while self._thread.is_alive():
            try:
                self._queue.put(_DONE, timeout=0.2)
                break
            except queue.Full:
                continue
        self._thread.join()
        self._thread = None

    def _copy(self, statement: sql.Composed) -> None:
        assert self._conn is not None
        try:
            with self._conn.cursor() as cur:
                with cur.copy(statement) as copy:
                    while True:
                        item = self._queue.get()
                        if item is _DONE:
                            break
                        if self._stop.is_set():
                            raise _Abandoned
                        copy.write(self._encode(*item))
                if cur.rowcount != self.rows:
                    self.give_up(f"the COPY took {cur.rowcount} of {self.rows} rows")
        except _Abandoned:
            pass
        except Exception as exc:
            # The value Postgres refused is not repeated: the text staging locates it.
            self.give_up(type(exc).__name__)
        finally:
            self._stop.set()
            while True:  # a sender waiting on a full queue goes on
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break


class _Abandoned(Exception):
    """Raised inside the COPY block to end it with an error (psycopg then cancels the COPY)."""
