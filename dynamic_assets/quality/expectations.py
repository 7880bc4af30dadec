"""Declared expectations, run by Great Expectations 1.x inside Postgres.

Great Expectations judges the typed table built for the version (`datasets.curated.build_version`)
through a plain SELECT of its columns, one validation of the whole suite over one batch. When no
typed table could be built (values that do not cast), the staged rows are exposed instead
through a query that casts each staged value to its declared type (a value that does not cast
becomes NULL here; the `rows_castable` check reports it). Every expectation runs as SQL in the
database, so a version of any size is validated without its rows coming into Python; results
carry the observed value, unexpected count and percent, and up to 10 examples with their source
file and row.

The files holding a failed column expectation's unexpected rows are found by a query of our own
(`unexpected_rows`): the expectation's condition rebuilt with `psycopg.sql`, its arguments bound
as parameters, with Great Expectations' semantics (which rows count, how NULL is treated). SQL text
that Great Expectations renders for display is never executed. An expectation type without such a
condition fails without naming files (`ExpectationOutcome.unattributed`).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from dynamic_assets.db.casts import (
    WITHHELD,
    bad_text_value,
    cast_expression,
    describe_example,
    text_source,
)
from dynamic_assets.db.tables import CURATED_SCHEMA, RAW_SCHEMA, ident, partition_name
from dynamic_assets.declarations.model import Column, Dataset, Expectation

EXAMPLES = 10
# A row's source file and row: as the staged rows and `built_select` name them, and as the
# typed table built for a version holds them.
LINEAGE_NAMES = ("_file_id", "_row")
BUILT_LINEAGE_NAMES = ("_source_file_id", "_source_row")


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
    file_counts: dict[str, int] = field(default_factory=dict)  # unexpected rows per file path
    first_rows: dict[str, int] = field(default_factory=dict)  # first unexpected row per file path
    unattributed: str | None = None  # why a failed check names no file

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
        return self._described(parts, self.examples)

    def message_in_file(self, path: str) -> str:
        """The failure as one file holds it: that file's unexpected rows and first example."""
        if self.success or self.error or path not in self.file_counts:
            return self.message
        exp = self.expectation
        target = f" on {exp.kwargs['column']}" if "column" in exp.kwargs else ""
        parts = [
            f"{exp.type}{target} failed",
            f"{self.file_counts[path]} unexpected value(s) in this file",
        ]
        return self._described(parts, [e for e in self.examples if e.get("file") == path])

    def _described(self, parts: list[str], examples: list[dict]) -> str:
        if self.observed is not None:
            parts.append(f"observed {self.observed!r}")
        if examples:
            parts.append(f"first: {describe_example(examples[0])}")
        if self.unattributed:
            parts.append(f"files at fault not identified: {self.unattributed}")
        return "; ".join(parts)


def check_names(ds: Dataset) -> list[str]:
    """One Dagster check name per declared expectation, stable and unique, that reads alone in a
    narrow list: the column(s) first, then what is expected of them, e.g. `price_between` for
    `expect_column_values_to_be_between` on `price`, `venue_in_set`, `symbol_match_regex`,
    `row_count_between` for a table expectation. A repeated name takes `_2`, `_3`, ..."""
    names: list[str] = []
    for exp in ds.expectations:
        kwargs = exp.kwargs
        columns = [kwargs[k] for k in COLUMN_ARGS if isinstance(kwargs.get(k), str)]
        for key in COLUMN_LIST_ARGS:
            columns += [c for c in kwargs.get(key) or [] if isinstance(c, str)]
        if len(columns) > 2:  # a table-wide expectation: its name says what, the check lists them
            columns = []
        expected = re.sub(r"^(column_values|column|table)_", "", exp.type.removeprefix("expect_"))
        expected = re.sub(r"(^|_)to_(be_)?", r"\1", expected).replace("not_be_", "not_")
        name = re.sub(r"[^A-Za-z0-9_]", "_", "_".join([*columns, expected]))[:100]
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
    return typed_select(ds, version, columns).as_string(conn)


def built_select(ds: Dataset, table: str, columns: list[str] | None = None) -> sql.Composed:
    """SELECT of the typed table `table` (in `ai_curated`, built for one version) in the shape
    of `typed_select`: source file and row as `_file_id` and `_row`, then the declared columns
    (only `columns` when given). Vectors are read as their text, which Great Expectations'
    SQL engine can type."""
    cols: list[sql.Composable] = [
        sql.SQL("s._source_file_id AS _file_id"),
        sql.SQL("s._source_row AS _row"),
    ]
    for col in ds.columns:
        if columns is not None and col.name not in columns:
            continue
        name = sql.Identifier(col.name)
        value = (
            sql.SQL("(s.{})::text").format(name) if col.vector_dim else sql.SQL("s.{}").format(name)
        )
        cols.append(sql.SQL("{} AS {}").format(value, name))
    return sql.SQL("SELECT {} FROM {} s").format(
        sql.SQL(", ").join(cols), ident(CURATED_SCHEMA, table)
    )


def typed_select(ds: Dataset, version: str, columns: list[str] | None = None) -> sql.Composed:
    """The statement of `typed_query`, composed."""
    cols: list[sql.Composable] = [sql.SQL("s._file_id"), sql.SQL("s._row")]
    for col in ds.columns:
        if columns is not None and col.name not in columns:
            continue
        cols.append(sql.SQL("{} AS {}").format(_safe_cast(ds, col), sql.Identifier(col.name)))
    return sql.SQL("SELECT {} FROM {} s").format(
        sql.SQL(", ").join(cols), ident(RAW_SCHEMA, partition_name(ds.name, version))
    )


def _safe_cast(ds: Dataset, col: Column) -> sql.Composable:
    if ds.family == "parquet" or col.type == "string":
        expr = cast_expression(ds, col)
        return sql.SQL("({})::text").format(expr) if col.vector_dim else expr
    if col.vector_dim:
        return sql.SQL("({})::text").format(text_source(ds, col))
    # The value promotion would curate (same written forms, timestamps without an offset read
    # as UTC), or NULL where the value is not one the declared type takes.
    expr = cast_expression(ds, col)
    bad = bad_text_value(ds, col)
    if bad is None:
        return expr
    return sql.SQL("CASE WHEN NOT ({}) THEN {} END").format(bad, expr)


def _gx_url(uri: str) -> str:
    """A SQLAlchemy URL for Great Expectations (psycopg2 driver)."""
    for prefix in ("postgresql://", "postgres://"):
        if uri.startswith(prefix):
            return "postgresql+psycopg2://" + uri[len(prefix) :]
    return uri


def run_expectations(
    uri: str, ds: Dataset, version: str, *, table: str | None = None
) -> list[ExpectationOutcome]:
    """Validate the version against the declared expectations; one outcome each.

    `table`: the typed table built for the version (in `ai_curated`); without it, the staged
    rows cast on the fly."""
    if not ds.expectations:
        return []
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.registry import get_expectation_impl

    columns = referenced_columns(ds)
    typed = built_select(ds, table, columns) if table else typed_select(ds, version, columns)
    with psycopg.connect(uri) as conn:
        query = typed.as_string(conn)
        paths: dict[int, str] = dict(
            conn.execute(
                "SELECT id, path FROM public.onedrive_ingest WHERE dataset = %s AND version = %s",
                (ds.name, version),
            ).fetchall()
        )

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_sql(name="dynamic_assets", connection_string=_gx_url(uri))
    # The typed table itself when the expectations name their columns and none is a vector:
    # Great Expectations reads a table's columns from the catalog, where for a query it runs
    # the query and fetches every row into memory to learn them (a dataset with vectors still
    # goes through the query, which names only the columns the expectations read).
    lineage = LINEAGE_NAMES
    asset: Any
    # (Its catalog reads every column's type: pgvector's `vector` is one SQLAlchemy cannot.)
    if table and columns is not None and not any(c.vector_dim for c in ds.columns):
        asset = source.add_table_asset(
            name=f"{ds.name}_built", table_name=table, schema_name=CURATED_SCHEMA
        )
        lineage = BUILT_LINEAGE_NAMES
    else:
        asset = source.add_query_asset(name=f"{ds.name}_staged", query=query)
    batch = asset.add_batch_definition_whole_table("version").get_batch()

    outcomes: list[ExpectationOutcome] = []
    names = check_names(ds)
    suite = gx.ExpectationSuite(name=f"{ds.name}_declared")
    built: list[tuple[str, Expectation, Any]] = []
    for name, exp in zip(names, ds.expectations, strict=True):
        refused = _nul_argument(exp.kwargs)
        if refused:
            outcomes.append(
                ExpectationOutcome(
                    name,
                    exp,
                    False,
                    error=f"{refused} in the declaration of {ds.name} holds a NUL character "
                    "(U+0000), which PostgreSQL text cannot hold; remove it from the declaration",
                )
            )
            continue
        try:
            impl = get_expectation_impl(exp.type)
            configured = suite.add_expectation(impl(**exp.kwargs))
            # An ephemeral suite gives its expectations no id; each gets one here, which its
            # result carries back (results come grouped by column, not in suite order).
            configured.id = str(uuid.uuid4())
            built.append((name, exp, configured))
        except (
            Exception
        ) as exc:  # unknown expectation or bad arguments: a failed check, not a crash
            outcomes.append(
                ExpectationOutcome(name, exp, False, error=f"{type(exc).__name__}: {exc}")
            )
    if built:
        # First every expectation's counts and observed values, without examples: a query that
        # looks for examples of a passing expectation finds none only after reading the whole
        # table, twice per expectation (the values, then their source rows). Then the failed
        # ones again, with their examples and where they are.
        result = batch.validate(
            suite,
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": 0},
        )
        by_id = {r.expectation_config.id: r for r in result.results if r.expectation_config}
        if len(by_id) != len(result.results) or set(by_id) != {c.id for _, _, c in built}:
            raise RuntimeError("Great Expectations returned results that do not match the suite")
        failed = gx.ExpectationSuite(name=f"{ds.name}_failed")
        for _, exp, configured in built:
            if not by_id[configured.id].success:
                # A fresh copy (an expectation belongs to one suite), under the same id.
                again_of = failed.add_expectation(get_expectation_impl(exp.type)(**exp.kwargs))
                again_of.id = configured.id
        if failed.expectations:
            again = batch.validate(
                failed,
                result_format={
                    "result_format": "SUMMARY",
                    "unexpected_index_column_names": list(lineage),
                    "partial_unexpected_count": EXAMPLES,
                    "return_unexpected_index_query": False,
                },
            )
            for r in again.results:
                if r.expectation_config is not None and r.expectation_config.id in by_id:
                    by_id[r.expectation_config.id] = r
        for name, exp, configured in built:
            r = by_id[configured.id]
            res = r.result or {}
            error = None
            sensitive = ds.sensitivity == "sensitive"
            if r.exception_info and r.exception_info.get("raised_exception"):
                # The database's error text may quote values (and the query's parameters).
                error = (
                    f"the expectation raised an error {WITHHELD}"
                    if sensitive
                    else str(r.exception_info.get("exception_message"))[:500]
                )
            column = exp.kwargs.get("column")
            examples = [
                {
                    "file": paths.get(item["_file_id"], f"file #{item['_file_id']}"),
                    "row": item["_row"],
                    "value": WITHHELD
                    if sensitive
                    else item.get(column)
                    if column
                    else {k: v for k, v in item.items() if not k.startswith("_")},
                }
                for item in (
                    _by_name(found, lineage)
                    for found in (res.get("partial_unexpected_index_list") or [])[:EXAMPLES]
                )
            ]
            file_counts: dict[int, tuple[int, int]] = {}
            unattributed = None
            if not r.success and error is None and res.get("unexpected_count") is not None:
                file_counts, unattributed = _files_at_fault(
                    uri, typed, configured, res["unexpected_count"]
                )
            outcomes.append(
                ExpectationOutcome(
                    name,
                    exp,
                    bool(r.success) and error is None,
                    file_ids=list(file_counts),
                    file_counts={
                        paths.get(fid, f"file #{fid}"): n for fid, (n, _) in file_counts.items()
                    },
                    first_rows={
                        paths.get(fid, f"file #{fid}"): row for fid, (_, row) in file_counts.items()
                    },
                    unattributed=unattributed,
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


def _by_name(item: dict, lineage: tuple[str, str] = LINEAGE_NAMES) -> dict[str, Any]:
    """An unexpected row keyed by the exact column names, its source file and row as `_file_id`
    and `_row`: Great Expectations keys it by case-insensitive strings, whose hash is that of the
    case-folded name, so `lifeExp` is not found by `item.get("lifeExp")`."""
    renamed = dict(zip(lineage, LINEAGE_NAMES, strict=True))
    return {renamed.get(str(k), str(k)): v for k, v in item.items()}


def _nul_argument(value: Any, where: str = "") -> str | None:
    """The first argument (by its path in the declaration) whose text holds a NUL character."""
    if isinstance(value, str):
        return (where or "a value") if "\x00" in value else None
    items: list[tuple[Any, Any]]
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, (list, tuple, set)):
        items = [(f"[{i}]", v) for i, v in enumerate(value)]
    else:
        return None
    for key, item in items:
        label = f"{where}{key}" if str(key).startswith("[") else f"{where}.{key}".lstrip(".")
        if "\x00" in str(key):
            return label
        found = _nul_argument(item, label)
        if found:
            return found
    return None


def _files_at_fault(
    uri: str, typed: sql.Composed, configured: Any, unexpected_count: int
) -> tuple[dict[int, tuple[int, int]], str | None]:
    """The files holding a failed expectation's unexpected rows (file id -> their number and
    the first of them), or why they are not named.

    The rows come from `unexpected_rows`; they are named only when they are as many as
    Great Expectations counted, so that a file is never blamed on a condition that disagrees
    with the check's own result."""
    query = unexpected_rows(typed, configured)
    if query is None:
        return {}, f"{configured.expectation_type} is not traced to rows"
    try:
        with psycopg.connect(uri) as conn:
            conn.read_only = True
            rows = conn.execute(query.statement, query.params).fetchall()
    except psycopg.Error as exc:
        return {}, f"tracing the rows failed ({type(exc).__name__})"
    if sum(n for _, n, _ in rows) != unexpected_count:
        return {}, "tracing the rows found a different number of them"
    return {fid: (int(n), int(first)) for fid, n, first in rows}, None


@dataclass(frozen=True)
class RowsQuery:
    """A composed statement and the parameters bound to its placeholders."""

    statement: sql.Composed
    params: list[Any]


def _values(values: list) -> tuple[sql.Composable, list]:
    """`(%s, %s, ...)`: one placeholder per value, the values to bind."""
    return sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() for _ in values)), list(
        values
    )


def _expected(exp_type: str, col: sql.Composable, c: Any) -> tuple[sql.Composable, list] | None:
    """The condition an expected row meets (as Great Expectations' SQL engine states it), or None
    for an expectation type without one here. Rows where the column is NULL are set apart by the
    caller, as Great Expectations does."""
    p = sql.Placeholder()
    if exp_type == "expect_column_values_to_be_in_set":
        if c.value_set is None:
            return sql.SQL("TRUE"), []
        members = [v for v in c.value_set if v is not None]
        if not members:
            return sql.SQL("FALSE"), []
        listed, params = _values(members)
        return sql.SQL("{} IN {}").format(col, listed), params
    if exp_type == "expect_column_values_to_not_be_in_set":
        if not c.value_set:
            return sql.SQL("TRUE"), []
        listed, params = _values(list(c.value_set))
        return sql.SQL("{} NOT IN {}").format(col, listed), params
    if exp_type in (
        "expect_column_values_to_be_between",
        "expect_column_value_lengths_to_be_between",
    ):
        if exp_type == "expect_column_value_lengths_to_be_between":
            col = sql.SQL("length({})").format(col)
        bounds, params = [], []
        if c.min_value is not None:
            bounds.append(sql.SQL("{} > {}" if c.strict_min else "{} >= {}").format(col, p))
            params.append(c.min_value)
        if c.max_value is not None:
            bounds.append(sql.SQL("{} < {}" if c.strict_max else "{} <= {}").format(col, p))
            params.append(c.max_value)
        if not bounds:
            return None
        return sql.SQL(" AND ").join(bounds), params
    if exp_type == "expect_column_value_lengths_to_equal":
        return sql.SQL("length({}) = {}").format(col, p), [c.value]
    if exp_type == "expect_column_values_to_match_regex":
        return sql.SQL("{} ~ {}").format(col, p), [c.regex]
    if exp_type == "expect_column_values_to_not_match_regex":
        return sql.SQL("{} !~ {}").format(col, p), [c.regex]
    if exp_type in (
        "expect_column_values_to_match_like_pattern",
        "expect_column_values_to_not_match_like_pattern",
    ):
        like = sql.SQL("{} LIKE {}").format(col, p)
        params = [c.like_pattern]
        if c.escape is not None:
            like = sql.SQL("{} ESCAPE {}").format(like, p)
            params.append(c.escape)
        if exp_type == "expect_column_values_to_not_match_like_pattern":
            like = sql.SQL("NOT ({})").format(like)
        return like, params
    return None


NULL_IS_THE_CHECK = {
    "expect_column_values_to_not_be_null": sql.SQL("{} IS NULL"),
    "expect_column_values_to_be_null": sql.SQL("{} IS NOT NULL"),
}
UNIQUE = ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique")


def unexpected_rows(typed: sql.Composed, configured: Any) -> RowsQuery | None:
    """The unexpected rows per file (`_file_id`, count, first `_row`) of a column-map expectation, as
    Great Expectations counts them: NULL is unexpected only to the NULL checks, and otherwise set
    apart; a repeated value makes every row holding it unexpected; `mostly` changes whether the
    check passes, not which rows are unexpected. None for an expectation type, or arguments
    (suite parameters, a row condition), without a condition here."""
    exp_type = configured.expectation_type
    if getattr(configured, "row_condition", None) or _has_suite_parameter(configured):
        return None
    if exp_type in UNIQUE:
        names = [configured.column] if exp_type == UNIQUE[0] else list(configured.column_list)
        cols = [sql.Identifier("q", n) for n in names]
        statement = sql.SQL(
            "SELECT w._file_id, count(*), min(w._row) FROM (SELECT q._file_id, q._row, "
            "{complete} AS _complete, "
            "count(*) OVER (PARTITION BY {cols}) AS _repeats FROM ({typed}) q) w "
            "WHERE w._complete AND w._repeats > 1 GROUP BY w._file_id ORDER BY w._file_id"
        ).format(
            complete=sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(c) for c in cols),
            cols=sql.SQL(", ").join(cols),
            typed=typed,
        )
        return RowsQuery(statement, [])
    column = getattr(configured, "column", None)
    if not isinstance(column, str):
        return None
    col = sql.Identifier("q", column)
    if exp_type in NULL_IS_THE_CHECK:
        condition, params = NULL_IS_THE_CHECK[exp_type].format(col), []
    else:
        expected = _expected(exp_type, col, configured)
        if expected is None:
            return None
        condition = sql.SQL("{} IS NOT NULL AND NOT ({})").format(col, expected[0])
        params = expected[1]
    statement = sql.SQL(
        "SELECT q._file_id, count(*), min(q._row) FROM ({typed}) q WHERE {condition} "
        "GROUP BY q._file_id ORDER BY q._file_id"
    ).format(typed=typed, condition=condition)
    return RowsQuery(statement, params)


ARGUMENTS = (
    "column",
    "column_list",
    "value_set",
    "min_value",
    "max_value",
    "strict_min",
    "strict_max",
    "value",
    "regex",
    "like_pattern",
    "escape",
)


def _has_suite_parameter(configured: Any) -> bool:
    """Whether an argument is a suite parameter (`{"$PARAMETER": ...}`), resolved only by a run."""
    values = [getattr(configured, a, None) for a in ARGUMENTS]
    return any(
        isinstance(v, dict) or (isinstance(v, list) and any(isinstance(i, dict) for i in v))
        for v in values
    )
