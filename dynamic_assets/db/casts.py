"""The SQL that reads a staged value and casts it to its declared type, inside Postgres, which
staged text values are taken, and how an example of a value that does not fit is shown (never
the value of a sensitive dataset).

Promotion (`datasets.curated`) and the expectations (`quality.expectations`) build their queries
from these expressions, so a value is read the same way by both.

Text values (CSV cells, JSON fields) are taken in one written form per type, tested in Postgres
on the whole column (`bad_text_value`): a regular expression on the text, then
`pg_input_is_valid` for what a pattern cannot say (the 30th of February, a bigint's range).
Postgres' own input functions take more: `now` and `today` (the load time), `epoch`,
`infinity`, Julian days, `Jan 5 2030`, BC years, years past 9999, `0x1F`, `1_000` and `+5`
(Postgres 16+); and `->>` reads any JSON value as text, so `"12"` would become the integer 12
and `5` the string "5". A column declared `coerce: true` takes integers, floats and booleans in
every form Postgres reads and JSON values of another JSON type; dates and timestamps are
ISO 8601 in every case, so that a version's rows never depend on when it was loaded.
"""

from __future__ import annotations

import hashlib
import json

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


# The written forms a text value takes (README, "Declared types"). Numbers are decimal, with no
# sign but `-`; NaN and the infinities are floats' own words (`NON_FINITE_WORDS`). Each pattern
# means the same to Postgres' regular expressions and to RE2 (Arrow's, `staging.judge_forms`):
# anchored, ASCII classes and literals only, `$` the end of the text (not before a newline).
INTEGER_TEXT = r"^-?[0-9]+$"
FLOAT_TEXT = r"^-?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$"
NON_FINITE_WORDS = ("nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity")
DATE_TEXT = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
# A UTC offset at the end of a timestamp; a timestamp without one is read as UTC.
OFFSET_TEXT = r"(Z|[-+][0-9]{2}(:?[0-9]{2})?)$"
TIMESTAMP_TEXT = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ]([01][0-9]|2[0-3]):[0-5][0-9]"
    r"(:[0-5][0-9](\.[0-9]{1,6})?)?" + r"(Z|[-+][0-9]{2}(:?[0-9]{2})?)?$"
)
TEXT_FORMS = {
    "integer": INTEGER_TEXT,
    "float": FLOAT_TEXT,
    "date": DATE_TEXT,
    "timestamp": TIMESTAMP_TEXT,
}
# What a message says is taken, per declared type.
ACCEPTED = {
    "integer": "decimal digits with an optional leading -",
    "float": "decimal digits with an optional leading -, a fraction and an exponent, or NaN/Infinity",
    "date": "ISO 8601 YYYY-MM-DD, years 1 to 9999",
    "timestamp": "ISO 8601 YYYY-MM-DD[T ]HH:MM[:SS[.ffffff]][Z|±HH[:MM]|±HHMM], years 1 to 9999",
}
# The JSON type a field of a JSON record must have for each declared type.
JSON_TYPES = {
    "string": "string",
    "integer": "number",
    "float": "number",
    "boolean": "boolean",
    "date": "string",
    "timestamp": "string",
}


def json_value(col: Column) -> sql.Composable:
    """The JSON value of a column's field in a staged JSON record (NULL when absent)."""
    return sql.SQL("(s.{} -> {})").format(sql.Identifier(RECORD_COLUMN), sql.Literal(col.name))


def strict_text(col: Column) -> bool:
    """Whether a staged text value of `col` must be in the column type's one written form."""
    return col.type in ("date", "timestamp") or not col.coerce


def text_form(col: Column) -> str | None:
    """The pattern a staged text value of `col` must match (its type's one written form), or
    None when any text its type casts is taken (strings, booleans, `coerce: true` numbers)."""
    if col.vector_dim or not strict_text(col):
        return None
    return TEXT_FORMS.get(col.type)


def csv_forms(ds: Dataset) -> dict[str, str]:
    """The written form of each CSV column that has one (`text_form`), by column name: what the
    regular expression pass of a build judges, and what staging may judge instead."""
    if ds.family != "csv":
        return {}
    return {c.name: form for c in ds.columns if (form := text_form(c)) is not None}


def forms_judged_note(ds: Dataset) -> str | None:
    """The comment staging gives a CSV version's partition when every value of every column in
    `csv_forms` was found in its written form: names the forms judged (their digest), so a
    build under a declaration with other forms judges the values again. None: nothing to judge.
    """
    forms = csv_forms(ds)
    if not forms:
        return None
    judged = {
        name: {
            "form": form,
            "words": list(NON_FINITE_WORDS) if ds.column(name).type == "float" else [],
            "trim": " ",
        }
        for name, form in sorted(forms.items())
    }
    digest = hashlib.sha256(json.dumps(judged, sort_keys=True).encode()).hexdigest()
    return f"written forms judged at staging: {digest}"


def bad_text_value(ds: Dataset, col: Column, *, validate: bool = True) -> sql.Composable | None:
    """True for a staged text value (CSV or JSON) of `col` that its declared type does not take,
    or None when every value is taken (a CSV string column). Vectors: `bad_vector_text`.

    With `validate` (Postgres 16+), `pg_input_is_valid` confirms what the pattern passed."""
    if col.vector_dim:
        return None
    src = text_source(ds, col)
    ok: list[sql.Composable] = []
    if ds.family == "json" and col.type in JSON_TYPES and not col.coerce:
        ok.append(
            sql.SQL("jsonb_typeof({}) = {}").format(
                json_value(col), sql.Literal(JSON_TYPES[col.type])
            )
        )
    if col.type == "string":
        if not ok:
            return None
        # A JSON null is a missing value, not a string of another type.
        return sql.SQL("{} IS NOT NULL AND jsonb_typeof({}) <> 'null' AND NOT {}").format(
            json_value(col), json_value(col), ok[0]
        )
    pattern = text_form(col)
    if pattern is not None:
        form = sql.SQL("{} ~ {}").format(src, sql.Literal(pattern))
        if col.type == "float":
            form = sql.SQL("({} OR lower({}) IN ({}))").format(
                form, src, sql.SQL(", ").join(sql.Literal(w) for w in NON_FINITE_WORDS)
            )
        ok.append(form)
    if validate:
        ok.append(sql.SQL("pg_input_is_valid({}, {})").format(src, sql.Literal(col.pg_type)))
    if not ok:
        return None
    return sql.SQL("{} IS NOT NULL AND NOT coalesce({}, false)").format(
        src, sql.SQL(" AND ").join(ok)
    )


def cast_expression(ds: Dataset, col: Column, *, session_utc: bool = False) -> sql.Composable:
    """The SQL that turns the staged value of `col` into its declared type.

    A text timestamp without a UTC offset is read as UTC, whatever the session's time zone;
    `session_utc`: the statement runs with `TimeZone` set to UTC, where Postgres reads it so by
    itself (one cast instead of a pattern test and one of two casts per value)."""
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
    if col.type == "timestamp" and session_utc:
        return sql.SQL("({})::timestamptz").format(src)
    if col.type == "timestamp":
        return sql.SQL(
            "(CASE WHEN {src} ~ {offset} THEN ({src})::timestamptz "
            "ELSE ({src})::timestamp AT TIME ZONE 'UTC' END)"
        ).format(src=src, offset=sql.Literal(OFFSET_TEXT))
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
    return sql.SQL("lower({}) IN ({})").format(
        src, sql.SQL(", ").join(sql.Literal(w) for w in NON_FINITE_WORDS)
    )


def bad_vector_array(src: sql.Composable, dim: int) -> sql.Composable:
    """True for a staged `real[]` (Parquet) that is not `dim` finite numbers (pgvector holds
    neither NaN nor an infinity)."""
    return sql.SQL(
        "{src} IS NOT NULL AND (coalesce(cardinality({src}), 0) <> {dim} OR EXISTS "
        "(SELECT 1 FROM unnest({src}) x WHERE x IS NULL "
        "OR x IN ('NaN'::real, 'Infinity'::real, '-Infinity'::real)))"
    ).format(src=src, dim=sql.Literal(dim))


def null_source(ds: Dataset, col: Column) -> sql.Composable:
    """The staged value of a column as it is tested for null (and shown in examples)."""
    if ds.family == "parquet":
        return sql.SQL("s.{}").format(sql.Identifier(col.name))
    return text_source(ds, col)
