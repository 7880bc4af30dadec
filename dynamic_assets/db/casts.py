"""The SQL that reads a staged value and casts it to its declared type, inside Postgres, and how
an example of a value that does not fit is shown (never the value of a sensitive dataset).

Promotion (`datasets.curated`) and the expectations (`quality.expectations`) build their queries
from these expressions, so a value is read the same way by both.
"""

from __future__ import annotations

from psycopg import sql

from dynamic_assets.db.tables import RECORD_COLUMN
from dynamic_assets.declarations.model import WITHHELD, Column, Dataset


def describe_example(example: dict) -> str:
    """`path row N: 'value'`, without the value when it is withheld."""
    where = f"{example['file']} row {example['row']}"
    value = example.get("value")
    return where if value == WITHHELD else f"{where}: {value!r}"


def text_source(ds: Dataset, col: Column) -> sql.Composable:
    """The staged value of a column as text (CSV and JSON staging)."""
    if ds.family == "csv":
        return (
            sql.SQL("NULLIF(btrim(s.{}), '')").format(sql.Identifier(col.name))
            if col.type != "string"
            else sql.SQL("s.{}").format(sql.Identifier(col.name))
        )
    if col.type == "json" or col.vector_dim:
        return sql.SQL("NULLIF(s.{} -> {}, 'null'::jsonb)::text").format(
            sql.Identifier(RECORD_COLUMN), sql.Literal(col.name)
        )
    return sql.SQL("(s.{} ->> {})").format(sql.Identifier(RECORD_COLUMN), sql.Literal(col.name))


def cast_expression(ds: Dataset, col: Column) -> sql.Composable:
    """The SQL that turns the staged value of `col` into its declared type."""
    pg_type = sql.SQL(col.pg_type)
    if ds.family == "parquet":
        src: sql.Composable = sql.SQL("s.{}").format(sql.Identifier(col.name))
        if col.type == "timestamp":
            return sql.SQL("({} AT TIME ZONE 'UTC')").format(src)
        if col.vector_dim:
            return sql.SQL("{}::{}").format(src, pg_type)
        return src
    src = text_source(ds, col)
    if col.type == "string":
        return src
    return sql.SQL("({})::{}").format(src, pg_type)


def bad_vector_text(src: sql.Composable, dim: int) -> sql.Composable:
    """True for a text value that is not `[x1, ..., x<dim>]` of finite numbers.

    pgvector raises instead of answering pg_input_is_valid, so the text is checked as a real[]
    (brackets turned into braces) and its length compared with the declared dimension.
    """
    as_array = sql.SQL("translate({}, '[]', '{{}}')").format(src)
    valid = sql.SQL(
        "({src} ~ '^\s*\[[^\[\]]*\]\s*$' AND pg_input_is_valid({arr}, 'real[]'))"
    ).format(src=src, arr=as_array)
    return sql.SQL(
        "{src} IS NOT NULL AND NOT coalesce({valid} AND (SELECT cardinality(x) = {dim} "
        "AND NOT ('NaN'::real = ANY(x) OR 'Infinity'::real = ANY(x) OR '-Infinity'::real = ANY(x)) "
        "FROM (SELECT CASE WHEN {valid} THEN {arr}::real[] END AS x) v), false)"
    ).format(src=src, valid=valid, arr=as_array, dim=sql.Literal(dim))


def non_finite(ds: Dataset, col: Column) -> sql.Composable:
    """True for a staged float value that is NaN or an infinity."""
    if ds.family == "parquet":
        src: sql.Composable = sql.SQL("s.{}").format(sql.Identifier(col.name))
        return sql.SQL("{} IN ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8)").format(src)
    src = text_source(ds, col)
    return sql.SQL(
        "lower({}) IN ('nan', 'inf', '+inf', '-inf', 'infinity', '+infinity', '-infinity')"
    ).format(src)


def null_source(ds: Dataset, col: Column) -> sql.Composable:
    """The staged value of a column as it is tested for null (and shown in examples)."""
    if ds.family == "parquet":
        return sql.SQL("s.{}").format(sql.Identifier(col.name))
    return text_source(ds, col)
