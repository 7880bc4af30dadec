"""The `rows_castable` check: before promotion, `staging_problems` finds the staged values that
would not cast to their declared types (or are not in the written form the type takes), nulls in
non-nullable columns, primary keys too large for their index and duplicate primary keys, each
with its source file and row, so a failure says exactly what to fix."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import sql

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
    RAW_SCHEMA,
    ident,
    partition_name,
)
from dynamic_assets.declarations.model import Column, Dataset

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
    # The message of each file at fault (by path): its own count and its first example.
    by_file: dict[str, str] = field(default_factory=dict)


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
            per_file = conn.execute(
                sql.SQL(
                    "SELECT s._file_id, i.path, count(*) FROM {} s "
                    "LEFT JOIN public.onedrive_ingest i ON i.id = s._file_id WHERE {} "
                    "GROUP BY s._file_id, i.path ORDER BY s._file_id"
                ).format(part, cond)
            ).fetchall()
            by_file = {
                path: _message(ds, kind, col, count, [e for e in examples if e["file"] == path])
                for _, path, count in per_file
                if path is not None
            }
            msg = _message(ds, kind, col, int(n), examples)
            file_ids = [fid for fid, _, _ in per_file]
            problems.append(Problem(kind, col.name, int(n), msg, examples, file_ids, by_file))
    if ds.primary_key:
        problems.extend(_oversized_keys(conn, ds, version, part))
        problems.extend(_duplicate_keys(conn, ds, part))
    return problems


def _message(ds: Dataset, kind: str, col: Column, n: int, examples: list[dict]) -> str:
    """What is wrong with `n` values of a column, and the first of `examples` when there is one."""
    if kind == "cast":
        what = f"vector({col.vector_dim})" if col.vector_dim else col.type
        msg = f"column {col.name}: {n} value(s) are not a valid {what}"
    elif kind == "non_finite":
        msg = (
            f"column {col.name}: {n} value(s) are NaN or infinite, which the declaration does not "
            "allow (set allow_non_finite: true to accept them)"
        )
    else:
        msg = f"column {col.name}: {n} row(s) have no value but the column is declared not nullable"
    if examples:
        msg += f" (first: {describe_example(examples[0])})"
    if kind == "cast":
        msg += _accepted(ds, col)
    return msg


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
