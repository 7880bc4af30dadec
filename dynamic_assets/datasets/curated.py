"""Promotion from `ai_raw` staging to typed `ai_curated` tables, inside Postgres.

Rows are cast once, with one INSERT ... SELECT (no round trip through Python), into a new typed
table (`build_version`): a logged table recorded in `curated_builds`, which the checks judge and
the fingerprint reads before `swap_version` makes it the version's partition, in one transaction
with the registry rows. `promote_version` does both in one transaction. When Postgres refuses a
row, `datasets.checks.staging_problems` finds what and where in the text staging.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta

import psycopg
from psycopg import sql

from dynamic_assets.datasets.checks import staging_problems
from dynamic_assets.datasets.errors import PromotionError
from dynamic_assets.datasets.staging import forms_judged
from dynamic_assets.db.access import apply_access
from dynamic_assets.db.casts import (
    WITHHELD,
    bad_text_value,
    cast_expression,
)
from dynamic_assets.db.connection import scalar
from dynamic_assets.db.tables import (
    CURATED_SCHEMA,
    RAW_SCHEMA,
    build_name,
    dataset_lock,
    ident,
    partition_exists,
    partition_name,
    swap_partition,
    table_columns,
)
from dynamic_assets.declarations.model import HNSW_MAX_DIM, Dataset

GOVERNANCE = [
    ("_source_file_id", "bigint NOT NULL"),
    ("_source_row", "bigint NOT NULL"),
    ("_schema_version", "integer NOT NULL"),
    ("_retain_until", "date"),
    ("_curated_at", "timestamptz NOT NULL DEFAULT now()"),
]


def ensure_curated_table(conn: psycopg.Connection, ds: Dataset) -> None:
    """Create `ai_curated.<dataset>` (typed, partitioned by version, row level security on), and
    bring its grants and policies in line with the declared sensitivity and readers.

    Access is applied on every call, that is on every promotion, not only when the table is
    created: a changed `sensitivity` or `readers` takes effect at the next version, and the
    partitions built since the last call are checked too. It compares before it changes, so an
    unchanged declaration costs a few catalog reads and no lock.
    """
    with conn.transaction():
        dataset_lock(conn, CURATED_SCHEMA, ds.name)
        existing = table_columns(conn, CURATED_SCHEMA, ds.name)
        if existing:
            for col in ds.columns:
                if col.name not in existing:
                    conn.execute(
                        sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                            ident(CURATED_SCHEMA, ds.name),
                            sql.Identifier(col.name),
                            sql.SQL(col.pg_type),
                        )
                    )
            apply_access(conn, ds)
            return
        defs: list[sql.Composable] = [sql.SQL("dataset_version text NOT NULL")]
        for col in ds.columns:
            defs.append(
                sql.SQL("{} {}{}").format(
                    sql.Identifier(col.name),
                    sql.SQL(col.pg_type),
                    sql.SQL("" if col.nullable else " NOT NULL"),
                )
            )
        defs += [sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in GOVERNANCE]
        if ds.primary_key:
            defs.append(
                sql.SQL("PRIMARY KEY (dataset_version, {})").format(
                    sql.SQL(", ").join(sql.Identifier(k) for k in ds.primary_key)
                )
            )
        table = ident(CURATED_SCHEMA, ds.name)
        conn.execute(
            sql.SQL("CREATE TABLE {} ({}) PARTITION BY LIST (dataset_version)").format(
                table, sql.SQL(", ").join(defs)
            )
        )
        conn.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(table))
        conn.execute(
            sql.SQL("COMMENT ON TABLE {} IS {}").format(
                table, sql.Literal(ds.description or f"Curated dataset {ds.name}")
            )
        )
        for col in ds.columns:
            if col.description:
                conn.execute(
                    sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
                        table, sql.Identifier(col.name), sql.Literal(col.description)
                    )
                )
        apply_access(conn, ds)


class _Unfit(Exception):
    """Postgres refused the staged rows; the diagnostics say which and where."""


@dataclass(frozen=True)
class Promotion:
    rows: int
    seconds: float


def staging_shortfall(
    conn: psycopg.Connection, ds: Dataset, version: str, recorded: list[dict]
) -> str | None:
    """What the version's staging partition lacks against the rows recorded for its files when
    they were loaded (`recorded`: each file's id, path and rows_loaded), or None when it holds
    exactly those rows.

    Staging tables are unlogged: crash recovery empties them, while the registry still records
    each file as staged with its rows."""
    held: dict[int, int] = dict(
        conn.execute(
            sql.SQL("SELECT _file_id, count(*) FROM {} GROUP BY 1").format(
                ident(RAW_SCHEMA, partition_name(ds.name, version))
            )
        ).fetchall()
    )
    short = [
        f"{f['path']} holds {held.get(f['id'], 0)} of {f['rows_loaded']} rows"
        for f in recorded
        if held.get(f["id"], 0) != f["rows_loaded"]
    ]
    ids = {f["id"] for f in recorded}
    stray = sum(n for file_id, n in held.items() if file_id not in ids)
    if stray:
        short.append(f"{stray} rows of files not recorded for the version")
    if not short:
        return None
    total = sum(f["rows_loaded"] for f in recorded)
    kept = sum(n for file_id, n in held.items() if file_id in ids)
    return (
        f"staging of {ds.name} {version} holds {kept} of {total} rows recorded for its files "
        "(the staging tables do not survive a database crash): "
        f"materialize ai_raw/{ds.name} for {version} again; " + "; ".join(short)
    )


@dataclass(frozen=True)
class Build:
    """The typed table built for a version (`table`, in `ai_curated`), and what it was built
    from: the ids of the staged files and the rows."""

    table: str
    file_ids: list[int]
    rows: int
    seconds: float = 0.0


def promote_version(
    conn: psycopg.Connection,
    ds: Dataset,
    version: str,
    *,
    after_swap=None,
    recorded: list[dict] | None = None,
) -> Promotion:
    """Build the curated partition of `version` from staging and swap it in, in one transaction.

    `conn` must be in autocommit mode. `after_swap(conn, rows)` runs inside the same
    transaction (registry rows), so the registry never disagrees with the curated table.
    With `recorded` (the version's files with the rows recorded at their load,
    `registry.staged_files`), staging must hold exactly those rows.
    Raises `PromotionError` naming the first bad values, or the files whose staged rows are
    missing; the previous version stays as it was.
    """
    started = time.perf_counter()
    ensure_curated_table(conn, ds)
    with _located(conn, ds, version), conn.transaction():
        built = _build(conn, ds, version, recorded)
        _swap(conn, ds, version, built, after_swap)
    _analyze(conn, ident(CURATED_SCHEMA, partition_name(ds.name, version)))
    return Promotion(rows=built.rows, seconds=time.perf_counter() - started)


def build_version(
    conn: psycopg.Connection, ds: Dataset, version: str, *, recorded: list[dict] | None = None
) -> Build:
    """Build the typed table of `version` from staging (each value cast once, the primary key
    and the declared refusals enforced), record it in `curated_builds` and commit: a logged
    table, which outlives the process and a database crash, until `swap_version` makes it the
    version's partition. A table built before for the version is dropped.

    `conn` must be in autocommit mode. Raises `PromotionError` as `promote_version` does."""
    started = time.perf_counter()
    ensure_curated_table(conn, ds)
    with _located(conn, ds, version), conn.transaction():
        _drop_build(conn, ds, version)
        built = _build(conn, ds, version, recorded)
        conn.execute(
            "INSERT INTO public.curated_builds (dataset, version, table_name, file_ids, rows) "
            "VALUES (%s, %s, %s, %s, %s)",
            (ds.name, version, built.table, built.file_ids, built.rows),
        )
    _analyze(conn, ident(CURATED_SCHEMA, built.table))
    return Build(built.table, built.file_ids, built.rows, time.perf_counter() - started)


def recorded_build(
    conn: psycopg.Connection, ds: Dataset, version: str, recorded: list[dict]
) -> Build | None:
    """The typed table built for `version`, if it was built from exactly the files `recorded`
    (`registry.staged_files`: ids and rows loaded) and still exists; else None."""
    row = conn.execute(
        "SELECT table_name, file_ids, rows FROM public.curated_builds "
        "WHERE dataset = %s AND version = %s",
        (ds.name, version),
    ).fetchone()
    if row is None or not partition_exists(conn, CURATED_SCHEMA, row[0]):
        return None
    table, file_ids, rows = row
    if sorted(file_ids) != sorted(f["id"] for f in recorded) or rows != sum(
        int(f["rows_loaded"]) for f in recorded
    ):
        return None
    return Build(table, list(file_ids), int(rows))


def discard_build(conn: psycopg.Connection, ds: Dataset, version: str) -> None:
    """Drop the typed table built for `version` (its checks failed: it is never swapped in)."""
    with conn.transaction():
        _drop_build(conn, ds, version)


def swap_version(
    conn: psycopg.Connection, ds: Dataset, version: str, build: Build, *, after_swap=None
) -> Promotion:
    """Make the typed table `build` the version's curated partition, and run
    `after_swap(conn, rows)` (the registry rows, the fingerprint), in one transaction.

    Refuses (`PromotionError`) a table that is no longer the one recorded for the version."""
    started = time.perf_counter()
    ensure_curated_table(conn, ds)
    with conn.transaction():
        held = conn.execute(
            "SELECT 1 FROM public.curated_builds WHERE dataset = %s AND version = %s "
            "AND table_name = %s FOR UPDATE",
            (ds.name, version, build.table),
        ).fetchone()
        if held is None:
            raise PromotionError(
                f"the typed table built for {ds.name} {version} is no longer recorded: "
                f"materialize ai_raw/{ds.name} for {version} again"
            )
        conn.execute(
            "DELETE FROM public.curated_builds WHERE dataset = %s AND version = %s",
            (ds.name, version),
        )
        _swap(conn, ds, version, build, after_swap)
    return Promotion(rows=build.rows, seconds=time.perf_counter() - started)


@contextmanager
def _located(conn: psycopg.Connection, ds: Dataset, version: str) -> Iterator[None]:
    """Turn Postgres' refusal of the staged rows (`_Unfit`) into a `PromotionError` that names
    each bad value's file, row and column (`staging_problems`, over the text staging)."""
    try:
        yield
    except _Unfit as unfit:
        problems = staging_problems(conn, ds, version)
        if problems:
            raise PromotionError(
                "; ".join(p.message for p in problems), [p.__dict__ for p in problems]
            ) from None
        raise PromotionError(f"the staged rows do not fit the declared types: {unfit}") from None


def _analyze(conn: psycopg.Connection, table: sql.Composable) -> None:
    with conn.cursor() as cur:
        cur.execute(sql.SQL("ANALYZE {}").format(table))


def _drop_build(conn: psycopg.Connection, ds: Dataset, version: str) -> None:
    row = conn.execute(
        "DELETE FROM public.curated_builds WHERE dataset = %s AND version = %s "
        "RETURNING table_name",
        (ds.name, version),
    ).fetchone()
    if row is not None:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident(CURATED_SCHEMA, row[0])))


def _swap(conn: psycopg.Connection, ds: Dataset, version: str, build: Build, after_swap) -> None:
    swap_partition(conn, CURATED_SCHEMA, ds.name, version, build.table)
    if after_swap is not None:
        after_swap(conn, build.rows)


def keyed_and_finite(conn: psycopg.Connection, ds: Dataset, target: sql.Composable) -> bool:
    """Give the built table `target` its primary key (a duplicate raises `psycopg.Error`) and
    say whether its floats hold no NaN or infinity the declaration refuses."""
    if ds.primary_key:
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (dataset_version, {})").format(
                target, sql.SQL(", ").join(sql.Identifier(k) for k in ds.primary_key)
            )
        )
    non_finite = [
        sql.SQL("{} IN ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8)").format(
            sql.Identifier(c.name)
        )
        for c in ds.columns
        if c.type == "float" and not c.allow_non_finite
    ]
    return not (
        non_finite
        and scalar(
            conn,
            sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE {})").format(
                target, sql.SQL(" OR ").join(non_finite)
            ),
        )
    )


def _build(
    conn: psycopg.Connection, ds: Dataset, version: str, recorded: list[dict] | None
) -> Build:
    """Inside the caller's transaction: the typed table of `version`, built from staging with
    one INSERT ... SELECT of the casts. Raises `_Unfit` when Postgres refuses a row."""
    started = time.perf_counter()
    retain = (
        sql.Literal(date.today() + timedelta(days=ds.retention_days))
        if ds.retention_days
        else sql.SQL("NULL::date")
    )
    names = [c.name for c in ds.columns]
    # Cast first; only when Postgres refuses a row, find what and where (the diagnostics scan
    # every value). Postgres casts more written forms than a declaration takes (`now`, `0x1F`,
    # "12" in JSON): those are looked for first, in one pass that stops at the first, unless
    # staging judged every value in its form already (CSV, `staging.forms_judged`).
    source = ident(RAW_SCHEMA, partition_name(ds.name, version))
    outside = [
        cond
        for cond in (bad_text_value(ds, c, validate=False) for c in ds.columns)
        if ds.family != "parquet" and cond is not None
    ]
    if outside and ds.family == "csv" and forms_judged(conn, ds, version):
        outside = []
    conn.execute("SET LOCAL TimeZone = 'UTC'")
    if recorded is not None:
        shortfall = staging_shortfall(conn, ds, version, recorded)
        if shortfall:
            raise PromotionError(
                shortfall,
                [{"kind": "staging_incomplete", "message": shortfall, "files": recorded}],
            )
    if outside and scalar(
        conn,
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {} s WHERE {})").format(
            source, sql.SQL(" OR ").join(outside)
        ),
    ):
        raise _Unfit("values outside the declared written forms")
    built = build_name(ds.name, version)
    target = ident(CURATED_SCHEMA, built)
    conn.execute(
        sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(
            target, ident(CURATED_SCHEMA, ds.name)
        )
    )
    # Read through the parent only (its policies): the partition has no grants and no policy.
    conn.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(target))
    try:
        with conn.transaction():
            cur = conn.execute(
                sql.SQL(
                    "INSERT INTO {target} (dataset_version, {cols}, _source_file_id, _source_row, _schema_version, _retain_until) "
                    "SELECT {version}, {exprs}, s._file_id, s._row, {schema_version}, {retain} FROM {source} s"
                ).format(
                    target=target,
                    cols=sql.SQL(", ").join(sql.Identifier(n) for n in names),
                    version=sql.Literal(version),
                    exprs=sql.SQL(", ").join(
                        # TimeZone is UTC for this transaction (SET LOCAL above).
                        cast_expression(ds, c, session_utc=True)
                        for c in ds.columns
                    ),
                    schema_version=sql.Literal(ds.schema_version),
                    retain=retain,
                    source=source,
                )
            )
            rows = cur.rowcount
            if not keyed_and_finite(conn, ds, target):
                raise _Unfit("NaN or infinite values in a column that does not allow them")
    except psycopg.Error as exc:
        # Postgres quotes the value it could not cast: withheld for a sensitive dataset.
        raise _Unfit(WITHHELD if ds.sensitive else exc.diag.message_primary or str(exc)) from None
    for col in ds.columns:
        if col.vector_dim and col.vector_dim <= HNSW_MAX_DIM:
            conn.execute(
                sql.SQL("CREATE INDEX ON {} USING hnsw ({} vector_cosine_ops)").format(
                    target, sql.Identifier(col.name)
                )
            )
    if recorded is not None:
        file_ids = sorted(f["id"] for f in recorded)
    else:
        file_ids = [
            r[0]
            for r in conn.execute(
                sql.SQL("SELECT DISTINCT _file_id FROM {} ORDER BY 1").format(source)
            ).fetchall()
        ]
    return Build(built, file_ids, rows, time.perf_counter() - started)
