"""Schema drift: what the source files of a version look like, compared with the previous version.

Drift is a change of the files' structure: a column (CSV header, JSON key, Parquet field) added
or dropped, or a column retyped. Parquet files declare their types, and a retype is a change of
the Arrow type of a field. CSV text declares none and JSON declares one per value, so there a
column is retyped only when its values moved to another type as a whole: when none of the
sampled values is of the type the column had before. A few values of another type (one `abc` in
an integer column, an `infinity` among timestamps) are bad values, which `rows_castable` reports
with their file and row, not drift; they do not change the type recorded for the column.

The observed schema is stored per version in `version_schemas` (column -> type) and compared with
the closest earlier version. For CSV the type of a column is the narrowest type that every
sampled value fitting the declared type casts to (or every value, when none fits it); for JSON,
the JSON types of a key's values (those fitting the declared type, or all when none does).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from dynamic_assets.db.connection import one_row
from dynamic_assets.db.tables import RAW_SCHEMA, RECORD_COLUMN, ident, partition_name
from dynamic_assets.declarations.model import Column, Dataset
from dynamic_assets.declarations.names import version_sort_key

SAMPLE_ROWS = 5_000
# Narrowest first: the first type all sampled values cast to is the observed type.
CANDIDATES = [
    ("integer", "bigint"),
    ("float", "double precision"),
    ("boolean", "boolean"),
    ("date", "date"),
    ("timestamp", "timestamptz"),
]


@dataclass
class Observed:
    """The observed schema of a staged version: column -> type, and for CSV and JSON the types
    its sampled values are of (each value is of every candidate type it casts to, or `string`
    when it casts to none; a JSON value is of its JSON type). `values` is None for Parquet,
    whose types are the files' own."""

    columns: dict[str, str]
    values: dict[str, set[str]] | None = None


def observe(
    conn: psycopg.Connection, ds: Dataset, version: str, parquet_types: dict[str, str] | None = None
) -> Observed:
    """The observed schema of the staged version."""
    part = ident(RAW_SCHEMA, partition_name(ds.name, version))
    if ds.family == "parquet":
        return Observed(dict(parquet_types or {c.name: c.type for c in ds.columns}))
    if ds.family == "json":
        return _observe_json(conn, ds, part)
    return _observe_csv(conn, ds, part)


def _fits_declared(col: Column, value: sql.Composable) -> sql.Composable:
    """True for a non-null text value that casts to the column's declared type."""
    if col.type == "string" or col.vector_dim:
        return sql.SQL("TRUE")
    return sql.SQL("pg_input_is_valid({}, {})").format(value, sql.Literal(col.pg_type))


def _observe_csv(conn: psycopg.Connection, ds: Dataset, part: sql.Composable) -> Observed:
    # Each sampled value is tried against each candidate type once, in the inner query; the
    # aggregates read those answers (pg_input_is_valid on free text costs microseconds a call).
    inner: list[sql.Composable] = []
    aggregates: list[sql.Composable] = []
    for i, col in enumerate(ds.columns):
        inner.append(
            sql.SQL("NULLIF(btrim({}), '') AS {}").format(
                sql.Identifier(col.name), sql.Identifier(f"v{i}")
            )
        )
    fitted: list[sql.Composable] = []
    for i, col in enumerate(ds.columns):
        v = sql.Identifier(f"v{i}")
        good = sql.Identifier(f"g{i}")
        fitted += [v, sql.SQL("{} AS {}").format(_fits_declared(col, v), good)]
        fits = [sql.Identifier(f"f{i}_{j}") for j in range(len(CANDIDATES))]
        fitted += [
            sql.SQL("pg_input_is_valid({}, {}) AS {}").format(v, sql.Literal(pg), fit)
            for (_, pg), fit in zip(CANDIDATES, fits, strict=True)
        ]
        for fit in fits:
            aggregates += [
                sql.SQL("bool_and({}) FILTER (WHERE {} IS NOT NULL AND {})").format(fit, v, good),
                sql.SQL("bool_and({}) FILTER (WHERE {} IS NOT NULL)").format(fit, v),
                sql.SQL("coalesce(bool_or({}), false)").format(fit),
            ]
        aggregates += [
            sql.SQL("count(*) FILTER (WHERE {} IS NOT NULL AND {})").format(v, good),
            sql.SQL("count({})").format(v),
            sql.SQL("coalesce(bool_or(NOT ({})), false)").format(sql.SQL(" OR ").join(fits)),
        ]
    values = one_row(
        conn,
        sql.SQL(
            # OFFSET 0 keeps the planner from pulling the answers up into each aggregate.
            "SELECT {} FROM (SELECT {} FROM (SELECT {} FROM {} LIMIT {}) s OFFSET 0) f"
        ).format(
            sql.SQL(", ").join(aggregates),
            sql.SQL(", ").join(fitted),
            sql.SQL(", ").join(inner),
            part,
            sql.Literal(SAMPLE_ROWS),
        ),
    )
    columns: dict[str, str] = {}
    types: dict[str, set[str]] = {}
    step = 3 * len(CANDIDATES) + 3
    for i, col in enumerate(ds.columns):
        chunk = values[i * step : (i + 1) * step]
        per_type = [chunk[3 * j : 3 * j + 3] for j in range(len(CANDIDATES))]
        n_good, n, some_text = chunk[-3:]
        if not n:
            columns[col.name], types[col.name] = "empty", set()
            continue
        narrowest = 0 if n_good else 1  # over the values that fit the declared type, if any
        columns[col.name] = next(
            (name for (name, _), agg in zip(CANDIDATES, per_type, strict=True) if agg[narrowest]),
            "string",
        )
        types[col.name] = {
            name for (name, _), agg in zip(CANDIDATES, per_type, strict=True) if agg[2]
        } | ({"string"} if some_text else set())
    return Observed(columns, types)


def _observe_json(conn: psycopg.Connection, ds: Dataset, part: sql.Composable) -> Observed:
    typed = [c for c in ds.columns if c.type not in ("string", "json") and not c.vector_dim]
    rows = conn.execute(
        sql.SQL(
            "SELECT e.k, jsonb_typeof(e.v), count(*) FILTER (WHERE d.t IS NULL OR "
            "pg_input_is_valid(e.v #>> '{{}}', d.t)) FROM "
            "(SELECT {rec} FROM {part} LIMIT {n}) s CROSS JOIN jsonb_each(s.{rec}) AS e(k, v) "
            "LEFT JOIN unnest(%s::text[], %s::text[]) AS d(k, t) ON d.k = e.k "
            "WHERE jsonb_typeof(e.v) <> 'null' GROUP BY 1, 2 ORDER BY 1, 2"
        ).format(rec=sql.Identifier(RECORD_COLUMN), part=part, n=sql.Literal(SAMPLE_ROWS)),
        ([c.name for c in typed], [c.pg_type for c in typed]),
    ).fetchall()
    every: dict[str, set[str]] = {}
    good: dict[str, set[str]] = {}
    for key, typ, n_good in rows:
        every.setdefault(key, set()).add(typ)
        if n_good:
            good.setdefault(key, set()).add(typ)
    return Observed(
        {k: "|".join(sorted(good.get(k) or types)) for k, types in every.items()}, every
    )


def _previous(
    conn: psycopg.Connection, dataset: str, version: str
) -> tuple[str, dict[str, str]] | None:
    """The closest earlier version with a stored schema, and that schema."""
    rows = conn.execute(
        "SELECT version, columns FROM public.version_schemas WHERE dataset = %s AND version <> %s",
        (dataset, version),
    ).fetchall()
    earlier = [(v, c) for v, c in rows if version_sort_key(v) < version_sort_key(version)]
    if not earlier:
        return None
    return max(earlier, key=lambda r: version_sort_key(r[0]))


def store(conn: psycopg.Connection, dataset: str, version: str, observed: Observed) -> None:
    """Records the version's schema. A column that did not drift keeps the type it had in the
    previous version, so that bad values never become the type the next version is compared
    with."""
    columns = dict(observed.columns)
    previous = _previous(conn, dataset, version)
    if previous is not None:
        prev = previous[1]
        for c in columns:
            if c in prev and not _retyped(prev[c], c, observed):
                columns[c] = prev[c]
    conn.execute(
        """INSERT INTO public.version_schemas (dataset, version, columns) VALUES (%s, %s, %s)
           ON CONFLICT (dataset, version) DO UPDATE SET columns = EXCLUDED.columns, observed_at = now()""",
        (dataset, version, Jsonb(columns)),
    )


@dataclass
class SchemaChange:
    previous_version: str | None
    added: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    retyped: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.dropped or self.retyped)

    @property
    def message(self) -> str:
        if self.previous_version is None:
            return "first version: nothing to compare with"
        if not self.changed:
            return f"same columns and types as version {self.previous_version}"
        parts = []
        if self.added:
            parts.append(f"added {', '.join(self.added)}")
        if self.dropped:
            parts.append(f"dropped {', '.join(self.dropped)}")
        if self.retyped:
            parts.append(
                "retyped " + ", ".join(f"{c} ({a} -> {b})" for c, (a, b) in self.retyped.items())
            )
        return f"compared with version {self.previous_version}: " + "; ".join(parts)


def _compatible(old: str, new: str) -> bool:
    """An empty sample or a narrowing within numbers is not a retype worth reporting."""
    return (
        old == new
        or "empty" in (old, new)
        or {old, new} == {"integer", "float"}
        and new == "integer"
    )


def _retyped(old: str, column: str, observed: Observed) -> bool:
    """Whether the column moved from type `old`: its observed type differs, and (for CSV and
    JSON, whose types are read from values) none of its sampled values is of type `old`."""
    new = observed.columns[column]
    if _compatible(old, new):
        return False
    if observed.values is None:
        return True
    return not set(old.split("|")) & observed.values.get(column, set())


def compare(
    conn: psycopg.Connection, dataset: str, version: str, current: Observed
) -> SchemaChange:
    previous = _previous(conn, dataset, version)
    if previous is None:
        return SchemaChange(None)
    prev_version, prev = previous
    change = SchemaChange(prev_version)
    change.added = [c for c in current.columns if c not in prev]
    change.dropped = [c for c in prev if c not in current.columns]
    change.retyped = {
        c: (prev[c], current.columns[c])
        for c in current.columns
        if c in prev and _retyped(prev[c], c, current)
    }
    return change
