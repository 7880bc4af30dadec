"""Declared expectations, run by Great Expectations 1.x inside Postgres.

The staged rows of one version are exposed to Great Expectations as a SQL query asset that casts
each staged value to its declared type (a value that does not cast becomes NULL here; the
`rows_castable` check reports it). Every expectation runs as SQL in the database, so a version of
any size is validated without its rows coming into Python; results carry the observed value,
unexpected count and percent, and up to 10 examples with their source file and row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from dynamic_assets.db.casts import (
    WITHHELD,
    cast_expression,
    describe_example,
    text_source,
)
from dynamic_assets.db.tables import RAW_SCHEMA, ident, partition_name
from dynamic_assets.declarations.model import Column, Dataset, Expectation

EXAMPLES = 10


@dataclass
class ExpectationOutcome:
    check_name: str
    expectation: Expectation
    success: bool
    observed: Any = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    examples: list[dict] = field(default_factory=list)
    error: str | None = None
    file_ids: list[int] = field(default_factory=list)  # files holding unexpected rows

    @property
    def severity(self) -> str:
        return self.expectation.severity

    @property
    def message(self) -> str:
        exp = self.expectation
        target = f" on {exp.kwargs['column']}" if "column" in exp.kwargs else ""
        if self.error:
            return f"{exp.type}{target}: could not run: {self.error}"
        if self.success:
            return f"{exp.type}{target}: passed"
        parts = [f"{exp.type}{target} failed"]
        if self.unexpected_count is not None:
            parts.append(
                f"{self.unexpected_count} unexpected value(s) ({self.unexpected_percent or 0:.2f}%)"
            )
        if self.observed is not None:
            parts.append(f"observed {self.observed!r}")
        if self.examples:
            parts.append(f"first: {describe_example(self.examples[0])}")
        return "; ".join(parts)


def check_names(ds: Dataset) -> list[str]:
    """One Dagster check name per declared expectation, stable and unique."""
    names: list[str] = []
    for exp in ds.expectations:
        base = exp.type.removeprefix("expect_")
        col = exp.kwargs.get("column") or "_".join(exp.kwargs.get("column_list", []) or [])
        name = re.sub(r"[^A-Za-z0-9_]", "_", f"{base}__{col}" if col else base)[:100]
        candidate, n = name, 2
        while candidate in names:
            candidate, n = f"{name}_{n}", n + 1
        names.append(candidate)
    return names


COLUMN_ARGS = ("column", "column_A", "column_B")
COLUMN_LIST_ARGS = ("column_list", "column_set")


def referenced_columns(ds: Dataset) -> list[str] | None:
    """The declared columns the expectations name, in declaration order; None when one of them
    may look at every column (e.g. a table-level column-list expectation)."""
    names: set[str] = set()
    for exp in ds.expectations:
        kwargs = exp.kwargs
        if exp.type in (
            "expect_table_columns_to_match_ordered_list",
            "expect_table_columns_to_match_set",
        ):
            return None
        for key in COLUMN_ARGS:
            if isinstance(kwargs.get(key), str):
                names.add(kwargs[key])
        for key in COLUMN_LIST_ARGS:
            if isinstance(kwargs.get(key), list):
                names.update(str(c) for c in kwargs[key])
    return [c.name for c in ds.columns if c.name in names]


def typed_query(
    conn: psycopg.Connection, ds: Dataset, version: str, columns: list[str] | None = None
) -> str:
    """SELECT of the version's staged rows with each column in its declared type (bad casts -> NULL).

    Only `columns` are cast when given: a check reads no more of the table than it needs."""
    cols: list[sql.Composable] = [sql.SQL("s._file_id"), sql.SQL("s._row")]
    for col in ds.columns:
        if columns is not None and col.name not in columns:
            continue
        cols.append(sql.SQL("{} AS {}").format(_safe_cast(ds, col), sql.Identifier(col.name)))
    query = sql.SQL("SELECT {} FROM {} s").format(
        sql.SQL(", ").join(cols), ident(RAW_SCHEMA, partition_name(ds.name, version))
    )
    return query.as_string(conn)


def _safe_cast(ds: Dataset, col: Column) -> sql.Composable:
    if ds.family == "parquet" or col.type == "string":
        expr = cast_expression(ds, col)
        return sql.SQL("({})::text").format(expr) if col.vector_dim else expr
    if col.vector_dim:
        return sql.SQL("({})::text").format(text_source(ds, col))
    src = text_source(ds, col)
    return sql.SQL("CASE WHEN pg_input_is_valid({src}, {t}) THEN ({src})::{t_sql} END").format(
        src=src, t=sql.Literal(col.pg_type), t_sql=sql.SQL(col.pg_type)
    )


def _gx_url(uri: str) -> str:
    """A SQLAlchemy URL for Great Expectations (psycopg2 driver)."""
    for prefix in ("postgresql://", "postgres://"):
        if uri.startswith(prefix):
            return "postgresql+psycopg2://" + uri[len(prefix) :]
    return uri


def run_expectations(uri: str, ds: Dataset, version: str) -> list[ExpectationOutcome]:
    """Validate the staged version against the declared expectations; one outcome each."""
    if not ds.expectations:
        return []
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.registry import get_expectation_impl

    with psycopg.connect(uri) as conn:
        query = typed_query(conn, ds, version, referenced_columns(ds))
        paths: dict[int, str] = dict(
            conn.execute(
                "SELECT id, path FROM public.onedrive_ingest WHERE dataset = %s AND version = %s",
                (ds.name, version),
            ).fetchall()
        )

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_sql(name="dynamic_assets", connection_string=_gx_url(uri))
    asset = source.add_query_asset(name=f"{ds.name}_staged", query=query)
    batch = asset.add_batch_definition_whole_table("version").get_batch()

    outcomes: list[ExpectationOutcome] = []
    names = check_names(ds)
    suite = gx.ExpectationSuite(name=f"{ds.name}_declared")
    built: list[tuple[str, Expectation, Any]] = []
    for name, exp in zip(names, ds.expectations, strict=True):
        try:
            impl = get_expectation_impl(exp.type)
            built.append((name, exp, suite.add_expectation(impl(**exp.kwargs))))
        except (
            Exception
        ) as exc:  # unknown expectation or bad arguments: a failed check, not a crash
            outcomes.append(
                ExpectationOutcome(name, exp, False, error=f"{type(exc).__name__}: {exc}")
            )
    if built:
        result = batch.validate(
            suite,
            result_format={
                "result_format": "SUMMARY",
                "unexpected_index_column_names": ["_file_id", "_row"],
                "partial_unexpected_count": EXAMPLES,
                "return_unexpected_index_query": True,
            },
        )
        # Expectations of an ephemeral suite have no ids; results come back in suite order.
        ordered = list(result.results)
        if len(ordered) != len(built) or any(
            r.expectation_config is None or r.expectation_config.type != c.expectation_type
            for r, (_, _, c) in zip(ordered, built, strict=False)
        ):
            raise RuntimeError("Great Expectations returned results that do not match the suite")
        for (name, exp, _configured), r in zip(built, ordered, strict=True):
            res = r.result or {}
            error = None
            if r.exception_info and r.exception_info.get("raised_exception"):
                error = str(r.exception_info.get("exception_message"))[:500]
            column = exp.kwargs.get("column")
            sensitive = ds.sensitivity == "sensitive"
            examples = [
                {
                    "file": paths.get(item.get("_file_id"), f"file #{item.get('_file_id')}"),
                    "row": item.get("_row"),
                    "value": WITHHELD
                    if sensitive
                    else item.get(column)
                    if column
                    else {k: v for k, v in item.items() if not k.startswith("_")},
                }
                for item in (res.get("partial_unexpected_index_list") or [])[:EXAMPLES]
            ]
            file_ids: list[int] = []
            if not r.success and res.get("unexpected_index_query"):
                file_ids = _files_at_fault(uri, query, res["unexpected_index_query"])
            outcomes.append(
                ExpectationOutcome(
                    name,
                    exp,
                    bool(r.success) and error is None,
                    file_ids=file_ids,
                    observed=WITHHELD
                    if sensitive and res.get("observed_value") is not None
                    else res.get("observed_value"),
                    unexpected_count=res.get("unexpected_count"),
                    unexpected_percent=res.get("unexpected_percent"),
                    examples=examples,
                    error=error,
                )
            )
    order = {n: i for i, n in enumerate(names)}
    return sorted(outcomes, key=lambda o: order[o.check_name])


def _files_at_fault(uri: str, typed: str, unexpected_query: str) -> list[int]:
    """The files holding a failed column expectation's unexpected rows, found in SQL.

    Great Expectations returns the query that selects the unexpected rows; its WHERE clause is
    applied to the typed query here (its FROM clause is not usable as is for a query asset).
    """
    if "\nWHERE " not in unexpected_query:
        return []
    condition = unexpected_query.rsplit("\nWHERE ", 1)[1].strip().rstrip(";")
    try:
        with psycopg.connect(uri) as conn:
            rows = conn.execute(
                f"SELECT DISTINCT _file_id FROM ({typed}) q WHERE {condition}"
            ).fetchall()  # noqa: S608
    except psycopg.Error:
        return []
    return [r[0] for r in rows]
