"""Promotion from `ai_raw` staging to typed `ai_curated` tables, inside Postgres.

Rows are cast with one INSERT ... SELECT (no round trip through Python) into a new table that
replaces the version's partition in one transaction. Before that, `staging_problems` finds the
values that would not cast, nulls in non-nullable columns, primary keys too large for their index
and duplicate primary keys, each with its source file and row, so a failure says exactly what to
fix.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, timedelta

import psycopg
from psycopg import sql

from dynamic_assets.datasets.errors import PromotionError
from dynamic_assets.db.access import apply_access
from dynamic_assets.db.casts import (
    ACCEPTED,
    JSON_TYPES,
    WITHHELD,
    bad_text_value,
    bad_vector_array,
    bad_vector_text,
    cast_expression,
    describe_example,
    json_value,
    non_finite,
    null_source,
    strict_text,
    text_source,
)
from dynamic_assets.db.connection import one_row, scalar
from dynamic_assets.db.tables import (
    CURATED_SCHEMA,
    RAW_SCHEMA,
    build_name,
    dataset_lock,
    ident,
    partition_name,
    swap_partition,
    table_columns,
)
from dynamic_assets.declarations.model import HNSW_MAX_DIM, Column, Dataset

GOVERNANCE = [
    ("_source_file_id", "bigint NOT NULL"),
    ("_source_row", "bigint NOT NULL"),
    ("_schema_version", "integer NOT NULL"),
    ("_retain_until", "date"),
    ("_curated_at", "timestamptz NOT NULL DEFAULT now()"),
]
EXAMPLES = 10

# The primary key's btree index holds at most 2704 bytes per index row on 8 kB pages
# (BTMaxItemSize: a third of a page less the page header and the heap tuple id). An index row is
# an 8-byte header, then each key column (dataset_version first) with its length header and
# alignment padding: at most 8 bytes beside each value. A key whose values take at most
# `key_bytes_limit` bytes, uncompressed, therefore always fits. Postgres may compress a longer
# value and index it, but whether that works depends on the content and the server's
# compression, so the bound counts values as they are.
BTREE_INDEX_ROW_MAX = 2704
INDEX_ROW_HEADER = 8
KEY_COLUMN_OVERHEAD = 8
# Bytes of the fixed-width types in the index; text and JSON are measured per value (JSON by its
# text), vectors by their declared dimension (8 + 4 bytes a dimension).
FIXED_KEY_BYTES = {"integer": 8, "float": 8, "boolean": 1, "date": 4, "timestamp": 8}


@dataclass
class Problem:
    kind: str  # cast | non_finite | null | key_size | duplicate_key
    column: str
    count: int
    message: str
    examples: list[dict] = field(default_factory=list)
    file_ids: list[int] = field(default_factory=list)


def _server_version(conn: psycopg.Connection) -> int:
    return int(scalar(conn, "SHOW server_version_num"))


def staging_problems(conn: psycopg.Connection, ds: Dataset, version: str) -> list[Problem]:
    """What would stop this version's staged rows from becoming curated rows, with examples."""
    part = ident(RAW_SCHEMA, partition_name(ds.name, version))
    problems: list[Problem] = []
    checks: list[tuple[str, Column, sql.Composable]] = []
    can_validate = _server_version(conn) >= 160000
    for col in ds.columns:
        if ds.family != "parquet" and col.vector_dim:
            checks.append(("cast", col, bad_vector_text(text_source(ds, col), col.vector_dim)))
        elif ds.family != "parquet":
            bad = bad_text_value(ds, col, validate=can_validate)
            if bad is not None:
                checks.append(("cast", col, bad))
        if ds.family == "parquet" and col.vector_dim:
            src = sql.SQL("s.{}").format(sql.Identifier(col.name))
            checks.append(("cast", col, bad_vector_array(src, col.vector_dim)))
        if col.type == "float" and not col.allow_non_finite:
            checks.append(("non_finite", col, non_finite(ds, col)))
        if not col.nullable:
            checks.append(("null", col, sql.SQL("{} IS NULL").format(null_source(ds, col))))
    if checks:
        counts = one_row(
            conn,
            sql.SQL("SELECT {} FROM {} s").format(
                sql.SQL(", ").join(
                    sql.SQL("count(*) FILTER (WHERE {})").format(cond) for _, _, cond in checks
                ),
                part,
            ),
        )
        for (kind, col, cond), n in zip(checks, counts, strict=True):
            if not n:
                continue
            examples = _examples(conn, ds, part, cond, col)
            if kind == "cast":
                what = f"vector({col.vector_dim})" if col.vector_dim else col.type
                msg = f"column {col.name}: {n} value(s) are not a valid {what}"
            elif kind == "non_finite":
                msg = (
                    f"column {col.name}: {n} value(s) are NaN or infinite, which the declaration does not allow "
                    "(set allow_non_finite: true to accept them)"
                )
            else:
                msg = f"column {col.name}: {n} row(s) have no value but the column is declared not nullable"
            if examples:
                first = examples[0]
                msg += f" (first: {describe_example(first)})"
            if kind == "cast":
                msg += _accepted(ds, col)
            file_ids = [
                r[0]
                for r in conn.execute(
                    sql.SQL("SELECT DISTINCT s._file_id FROM {} s WHERE {}").format(part, cond)
                ).fetchall()
            ]
            problems.append(Problem(kind, col.name, int(n), msg, examples, file_ids))
    if ds.primary_key:
        problems.extend(_oversized_keys(conn, ds, version, part))
        problems.extend(_duplicate_keys(conn, ds, part))
    return problems


def key_bytes_limit(ds: Dataset) -> int:
    """The most bytes the values of one primary key (the version's text included) may take so
    that the key always fits in a row of its btree index."""
    columns = len(ds.primary_key) + 1  # dataset_version leads the curated table's key
    return BTREE_INDEX_ROW_MAX - INDEX_ROW_HEADER - KEY_COLUMN_OVERHEAD * columns


def _key_bytes(ds: Dataset, version: str) -> sql.Composable | None:
    """The bytes of a staged row's key values, or None when no key value varies in length."""
    fixed = len(version.encode("utf-8"))
    measured: list[sql.Composable] = []
    for name in ds.primary_key:
        col = ds.column(name)
        if col.vector_dim:
            fixed += 8 + 4 * col.vector_dim
        elif col.type in FIXED_KEY_BYTES:
            fixed += FIXED_KEY_BYTES[col.type]
        elif col.type == "json":
            measured.append(
                sql.SQL("coalesce(octet_length(({})::text), 0)").format(null_source(ds, col))
            )
        else:
            measured.append(
                sql.SQL("coalesce(octet_length({}), 0)").format(cast_expression(ds, col))
            )
    if not measured:
        return None
    return sql.SQL(" + ").join([sql.Literal(fixed), *measured])


def _oversized_keys(conn, ds: Dataset, version: str, part) -> list[Problem]:
    """Rows whose key is too large for the primary key's index (Postgres would refuse the whole
    version at promotion with "index row requires N bytes")."""
    size = _key_bytes(ds, version)
    if size is None:
        return []
    limit = key_bytes_limit(ds)
    too_large = sql.SQL("{} > {}").format(size, sql.Literal(limit))
    rows = conn.execute(
        sql.SQL(
            "SELECT i.path, s._row, {size}, count(*) OVER () FROM {part} s "
            "LEFT JOIN public.onedrive_ingest i ON i.id = s._file_id WHERE {too_large} "
            "ORDER BY s._file_id, s._row LIMIT {n}"
        ).format(size=size, part=part, too_large=too_large, n=sql.Literal(EXAMPLES))
    ).fetchall()
    if not rows:
        return []
    file_ids = [
        r[0]
        for r in conn.execute(
            sql.SQL("SELECT DISTINCT s._file_id FROM {} s WHERE {}").format(part, too_large)
        ).fetchall()
    ]
    examples = [{"file": p, "row": r, "key_bytes": n} for p, r, n, _ in rows]
    first, total = examples[0], int(rows[0][3])
    return [
        Problem(
            "key_size",
            ",".join(ds.primary_key),
            total,
            f"primary key ({', '.join(ds.primary_key)}): {total} row(s) have a key larger than "
            f"the {limit:,} bytes its index can hold (first: {first['file']} row {first['row']}, "
            f"{first['key_bytes']:,} bytes with the version)",
            examples,
            file_ids,
        )
    ]


def _accepted(ds: Dataset, col: Column) -> str:
    """What a value of `col` is expected to be, said after a cast problem."""
    if col.vector_dim:
        return f"; expected [x1, ..., x{col.vector_dim}] of finite numbers"
    forms = []
    if ds.family == "json" and col.type in JSON_TYPES and not col.coerce:
        forms.append(f"a JSON {JSON_TYPES[col.type]}")
    if col.type in ACCEPTED and strict_text(col):
        forms.append(ACCEPTED[col.type])
    if not forms:
        return ""
    relaxed = not col.coerce and (col.type in ("integer", "float") or ds.family == "json")
    hint = " (coerce: true on the column takes other forms)" if relaxed else ""
    return f"; expected {', '.join(forms)}{hint}"


def _examples(conn, ds: Dataset, part, cond, col: Column) -> list[dict]:
    # A JSON field is shown as JSON, so that "12" is seen to be a string.
    value = json_value(col) if ds.family == "json" and col.type != "json" else null_source(ds, col)
    rows = conn.execute(
        sql.SQL(
            "SELECT i.path, s._row, left(({})::text, 200) FROM {} s "
            "LEFT JOIN public.onedrive_ingest i ON i.id = s._file_id WHERE {} ORDER BY s._file_id, s._row LIMIT {}"
        ).format(value, part, cond, sql.Literal(EXAMPLES))
    ).fetchall()
    if ds.sensitive:
        return [{"file": p, "row": r, "value": WITHHELD} for p, r, _ in rows]
    return [{"file": p, "row": r, "value": v} for p, r, v in rows]


def _duplicate_keys(conn, ds: Dataset, part) -> list[Problem]:
    keys = [cast_expression(ds, ds.column(k)) for k in ds.primary_key]
    try:
        rows = conn.execute(
            sql.SQL(
                "SELECT {keys_text}, count(*), array_agg(i.path || ' row ' || s._row ORDER BY s._file_id, s._row) "
                "FROM {part} s LEFT JOIN public.onedrive_ingest i ON i.id = s._file_id "
                "GROUP BY {keys} HAVING count(*) > 1 ORDER BY count(*) DESC LIMIT {n}"
            ).format(
                keys_text=sql.SQL(", ").join(sql.SQL("({})::text").format(k) for k in keys),
                keys=sql.SQL(", ").join(keys),
                part=part,
                n=sql.Literal(EXAMPLES),
            )
        ).fetchall()
    except psycopg.errors.DataError:
        conn.rollback() if not conn.autocommit else None
        return []  # keys that do not cast are reported as cast problems
    if not rows:
        return []
    total = scalar(
        conn,
        sql.SQL(
            "SELECT count(*) FROM (SELECT 1 FROM {} s GROUP BY {} HAVING count(*) > 1) d"
        ).format(part, sql.SQL(", ").join(keys)),
    )
    examples = [
        {
            "key": dict(zip(ds.primary_key, r[: len(keys)], strict=True)),
            "rows": r[len(keys) + 1][:5],
            "count": r[len(keys)],
        }
        for r in rows
    ]
    if ds.sensitive:
        for ex in examples:
            ex["key"] = dict.fromkeys(ex["key"], WITHHELD)
    first = examples[0]
    key_text = ", ".join(f"{k}={v}" for k, v in first["key"].items())
    dup_files = [
        r[0]
        for r in conn.execute(
            sql.SQL(
                "SELECT DISTINCT s._file_id FROM {part} s JOIN (SELECT {keys} FROM {part} s GROUP BY {positions} "
                "HAVING count(*) > 1) d ON ({match})"
            ).format(
                part=part,
                keys=sql.SQL(", ").join(
                    sql.SQL("{} AS {}").format(k, sql.Identifier(f"k{i}"))
                    for i, k in enumerate(keys)
                ),
                positions=sql.SQL(", ").join(sql.Literal(i + 1) for i in range(len(keys))),
                match=sql.SQL(" AND ").join(
                    sql.SQL("{} IS NOT DISTINCT FROM d.{}").format(k, sql.Identifier(f"k{i}"))
                    for i, k in enumerate(keys)
                ),
            )
        ).fetchall()
    ]
    return [
        Problem(
            "duplicate_key",
            ",".join(ds.primary_key),
            int(total),
            f"primary key ({', '.join(ds.primary_key)}): {total} value(s) appear more than once "
            f"(first: {key_text} in {' and '.join(first['rows'][:2])})",
            examples,
            dup_files,
        )
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
    retain = (
        sql.Literal(date.today() + timedelta(days=ds.retention_days))
        if ds.retention_days
        else sql.SQL("NULL::date")
    )
    names = [c.name for c in ds.columns]
    # Cast first; only when Postgres refuses a row, find what and where (the diagnostics scan
    # every value, which the blocking `rows_castable` check has normally done already). Postgres
    # casts more written forms than a declaration takes (`now`, `0x1F`, "12" in JSON): those are
    # looked for first, in one pass that stops at the first.
    source = ident(RAW_SCHEMA, partition_name(ds.name, version))
    outside = [
        cond
        for cond in (bad_text_value(ds, c, validate=False) for c in ds.columns)
        if ds.family != "parquet" and cond is not None
    ]
    try:
        with conn.transaction():
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
                cur = conn.execute(
                    sql.SQL(
                        "INSERT INTO {target} (dataset_version, {cols}, _source_file_id, _source_row, _schema_version, _retain_until) "
                        "SELECT {version}, {exprs}, s._file_id, s._row, {schema_version}, {retain} FROM {source} s"
                    ).format(
                        target=target,
                        cols=sql.SQL(", ").join(sql.Identifier(n) for n in names),
                        version=sql.Literal(version),
                        exprs=sql.SQL(", ").join(cast_expression(ds, c) for c in ds.columns),
                        schema_version=sql.Literal(ds.schema_version),
                        retain=retain,
                        source=source,
                    )
                )
                rows = cur.rowcount
                if ds.primary_key:
                    conn.execute(
                        sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (dataset_version, {})").format(
                            target, sql.SQL(", ").join(sql.Identifier(k) for k in ds.primary_key)
                        )
                    )
                non_finite = [
                    sql.SQL(
                        "{} IN ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8)"
                    ).format(sql.Identifier(c.name))
                    for c in ds.columns
                    if c.type == "float" and not c.allow_non_finite
                ]
                if non_finite and scalar(
                    conn,
                    sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE {})").format(
                        target, sql.SQL(" OR ").join(non_finite)
                    ),
                ):
                    raise _Unfit("NaN or infinite values in a column that does not allow them")
            except psycopg.Error as exc:
                # Postgres quotes the value it could not cast: withheld for a sensitive dataset.
                raise _Unfit(
                    WITHHELD if ds.sensitive else exc.diag.message_primary or str(exc)
                ) from None
            for col in ds.columns:
                if col.vector_dim and col.vector_dim <= HNSW_MAX_DIM:
                    conn.execute(
                        sql.SQL("CREATE INDEX ON {} USING hnsw ({} vector_cosine_ops)").format(
                            target, sql.Identifier(col.name)
                        )
                    )
            swap_partition(conn, CURATED_SCHEMA, ds.name, version, built)
            if after_swap is not None:
                after_swap(conn, rows)
    except _Unfit as unfit:
        problems = staging_problems(conn, ds, version)
        if problems:
            raise PromotionError(
                "; ".join(p.message for p in problems), [p.__dict__ for p in problems]
            ) from None
        raise PromotionError(f"the staged rows do not fit the declared types: {unfit}") from None
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("ANALYZE {}").format(ident(CURATED_SCHEMA, partition_name(ds.name, version)))
        )
    return Promotion(rows=rows, seconds=time.perf_counter() - started)
