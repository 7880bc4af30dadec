"""Schema drift: what the source files of a version look like, compared with the previous version.

The observed schema is taken from the staged rows: for CSV, the narrowest type every sampled
value of a column casts to; for JSON, the keys of the records and their JSON types; for Parquet,
the Arrow types the files declare. It is stored per version in `version_schemas` and compared
with the closest earlier version: columns added, dropped or retyped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from dynamic_assets.db.connection import one_row
from dynamic_assets.db.tables import RAW_SCHEMA, RECORD_COLUMN, ident, partition_name
from dynamic_assets.declarations.model import Dataset
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


def observe(
    conn: psycopg.Connection, ds: Dataset, version: str, parquet_types: dict[str, str] | None = None
) -> dict[str, str]:
    """The observed schema of the staged version: column -> observed type."""
    part = ident(RAW_SCHEMA, partition_name(ds.name, version))
    if ds.family == "parquet":
        return dict(parquet_types or {c.name: c.type for c in ds.columns})
    if ds.family == "json":
        rows = conn.execute(
            sql.SQL(
                "SELECT k, string_agg(DISTINCT jsonb_typeof(v), '|' ORDER BY jsonb_typeof(v)) FROM "
                "(SELECT {rec} FROM {part} LIMIT {n}) s, jsonb_each(s.{rec}) AS e(k, v) "
                "WHERE jsonb_typeof(v) <> 'null' GROUP BY k ORDER BY k"
            ).format(rec=sql.Identifier(RECORD_COLUMN), part=part, n=sql.Literal(SAMPLE_ROWS))
        ).fetchall()
        return {k: t for k, t in rows}
    aggregates = []
    for col in ds.columns:
        c = sql.Identifier(col.name)
        for _, pg in CANDIDATES:
            aggregates.append(
                sql.SQL(
                    "bool_and(pg_input_is_valid(btrim({c}), {t})) FILTER (WHERE btrim({c}) <> '')"
                ).format(c=c, t=sql.Literal(pg))
            )
        aggregates.append(sql.SQL("count({c}) FILTER (WHERE btrim({c}) <> '')").format(c=c))
    values = one_row(
        conn,
        sql.SQL("SELECT {} FROM (SELECT * FROM {} LIMIT {}) s").format(
            sql.SQL(", ").join(aggregates), part, sql.Literal(SAMPLE_ROWS)
        ),
    )
    out: dict[str, str] = {}
    step = len(CANDIDATES) + 1
    for i, col in enumerate(ds.columns):
        chunk = values[i * step : (i + 1) * step]
        if not chunk[-1]:
            out[col.name] = "empty"
            continue
        out[col.name] = next(
            (name for (name, _), ok in zip(CANDIDATES, chunk[:-1], strict=True) if ok), "string"
        )
    return out


def store(conn: psycopg.Connection, dataset: str, version: str, columns: dict[str, str]) -> None:
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


def compare(
    conn: psycopg.Connection, dataset: str, version: str, current: dict[str, str]
) -> SchemaChange:
    rows = conn.execute(
        "SELECT version, columns FROM public.version_schemas WHERE dataset = %s AND version <> %s",
        (dataset, version),
    ).fetchall()
    earlier = [(v, c) for v, c in rows if version_sort_key(v) < version_sort_key(version)]
    if not earlier:
        return SchemaChange(None)
    prev_version, prev = max(earlier, key=lambda r: version_sort_key(r[0]))
    change = SchemaChange(prev_version)
    change.added = [c for c in current if c not in prev]
    change.dropped = [c for c in prev if c not in current]
    change.retyped = {
        c: (prev[c], current[c])
        for c in current
        if c in prev and not _compatible(prev[c], current[c])
    }
    return change
