"""Which written forms a staged text value takes: ISO 8601 dates and timestamps within years 1 to
9999, decimal numbers, JSON values of the declared JSON type. Anything else Postgres' input
functions would read (`now`, `epoch`, Julian days, `0x1F`, `1_000`, `"12"` for 12, ...) is
refused by the `rows_castable` check, naming the file, the row and the column, unless the column
is declared `coerce: true`; dates and timestamps stay ISO 8601 even then."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from psycopg import sql

from dynamic_assets.datasets.checks import staging_problems
from dynamic_assets.datasets.curated import promote_version
from dynamic_assets.datasets.errors import PromotionError
from dynamic_assets.db.tables import CURATED_SCHEMA
from dynamic_assets.declarations.model import WITHHELD, Dataset
from dynamic_assets_tests.support.staging import stage_file, version_rows

FORMS = Dataset(
    name="forms",
    formats=["csv"],
    columns=[
        {"name": "id", "type": "integer", "nullable": False},
        {"name": "n", "type": "integer"},
        {"name": "x", "type": "float"},
        {"name": "day", "type": "date"},
        {"name": "at", "type": "timestamp"},
    ],
    primary_key=["id"],
)
HEADER = "id,n,x,day,at\n"
GOOD_ROW = "1,5,1.5,2030-01-02,2030-01-02T03:04:05Z\n"
COLUMNS = ["n", "x", "day", "at"]

SPECIAL_DATES = [
    "infinity",
    "-infinity",
    "epoch",
    "today",
    "now",
    "0001-01-01 BC",
    "Jan 5 2030",
    "J2451187",
    "20300103",
    "10000-01-01",
]
REFUSED = [
    *[("day", v) for v in SPECIAL_DATES],
    *[("at", v) for v in SPECIAL_DATES],
    ("at", "10000-01-01T00:00:00Z"),
    ("at", "2030-01-02T03:04:05.1234567Z"),  # finer than microseconds: not rounded away
    ("n", "0x1F"),
    ("n", "1_000"),
    ("n", "+5"),
    ("x", "0x10"),
    # Postgres' input functions skip the white space around a value; only spaces are ignored.
    ("n", "\t5"),
    ("n", "5\n"),
    ("x", "1.5\n"),
    ("x", "NaN\n"),
    ("day", "2030-01-02\n"),
    ("at", "2030-01-02T03:04:05Z\n"),
    ("at", "2030-01-02T03:04:05\t"),
]


def _row(column: str, value: str) -> str:
    if "\n" in value:
        value = f'"{value}"'
    values = {"n": "", "x": "", "day": "", "at": ""} | {column: value}
    return f"2,{values['n']},{values['x']},{values['day']},{values['at']}\n"


@pytest.mark.parametrize(("column", "value"), REFUSED, ids=[f"{c}={v}" for c, v in REFUSED])
def test_a_value_outside_the_written_form_is_refused_with_file_row_and_column(
    db, tmp_path, column, value
):
    with db.connect(autocommit=True) as conn:
        _, path = stage_file(
            conn, FORMS, "v1", tmp_path, "forms.csv", HEADER + GOOD_ROW + _row(column, value)
        )
        problems = staging_problems(conn, FORMS, "v1")
        with pytest.raises(PromotionError) as info:
            promote_version(conn, FORMS, "v1")
        curated = conn.execute("SELECT count(*) FROM ai_curated.forms").fetchone()
    assert [(p.kind, p.column, p.count) for p in problems] == [("cast", column, 1)]
    (problem,) = problems
    what = FORMS.column(column).type
    assert problem.message.startswith(f"column {column}: 1 value(s) are not a valid {what}")
    assert f"(first: {path} row 2: {value!r})" in problem.message
    assert problem.examples[0] == {"file": path, "row": 2, "value": value}
    assert problem.message in str(info.value)
    assert curated == (0,)  # nothing was curated


@pytest.mark.parametrize("value", ["maybe", "2", "yess"])
def test_a_boolean_postgres_does_not_read_is_refused_with_file_row_and_column(db, tmp_path, value):
    flags = Dataset(
        name="flags",
        formats=["csv"],
        columns=[{"name": "id", "type": "integer"}, {"name": "ok", "type": "boolean"}],
    )
    with db.connect(autocommit=True) as conn:
        _, path = stage_file(conn, flags, "v1", tmp_path, "f.csv", f"id,ok\n1,yes\n2,{value}\n")
        with pytest.raises(PromotionError) as info:
            promote_version(conn, flags, "v1")
        curated = conn.execute("SELECT count(*) FROM ai_curated.flags").fetchone()
    assert f"column ok: 1 value(s) are not a valid boolean (first: {path} row 2: {value!r})" in (
        str(info.value)
    )
    assert curated == (0,)


def test_a_sensitive_dataset_names_file_row_and_column_but_not_the_value(db, tmp_path):
    secret = FORMS.model_copy(update={"name": "secret_forms", "sensitivity": "sensitive"})
    with db.connect(autocommit=True) as conn:
        _, path = stage_file(
            conn, secret, "v1", tmp_path, "s.csv", HEADER + GOOD_ROW + _row("day", "Jan 5 2030")
        )
        (problem,) = staging_problems(conn, secret, "v1")
    assert problem.message.startswith(
        f"column day: 1 value(s) are not a valid date (first: {path} row 2)"
    )
    assert problem.examples == [{"file": path, "row": 2, "value": WITHHELD}]
    assert "Jan 5" not in problem.message + json.dumps(problem.examples)


def _curated(conn, ds: Dataset, columns: str) -> list[tuple]:
    return version_rows(conn, CURATED_SCHEMA, ds, "v1", sql.SQL(columns), "_source_row")


def test_iso_forms_pass_with_their_values(db, tmp_path):
    rows = [
        ("-5", "-0.25", "0001-01-01", "2030-01-02T03:04:05Z"),
        ("007", "1e3", "9999-12-31", "2030-01-02 03:04:05+02:00"),
        ("0", ".5", "2024-02-29", "2030-01-02T03:04:05.123456-05:30"),
        ("9223372036854775807", "5.", "2030-01-02", "2030-01-02T03:04"),
        ("", "-1.5E-3", "", "2030-01-02 03:04:05"),  # no offset: UTC
        ("", "", "", "2030-01-02T03:04:05.5+02"),
        ("", "", "", "0001-01-01T00:00:00Z"),
        ("", "", "", "9999-12-31 23:59:59.999999Z"),
        ("", "", "", "2030-01-02T03:04:05-0530"),
    ]
    text = HEADER + "".join(f"{i},{n},{x},{d},{a}\n" for i, (n, x, d, a) in enumerate(rows, 1))
    with db.connect(autocommit=True) as conn:
        stage_file(conn, FORMS, "v1", tmp_path, "iso.csv", text)
        assert staging_problems(conn, FORMS, "v1") == []
        conn.execute("SET TimeZone = 'Asia/Kolkata'")  # a session elsewhere reads the same
        promote_version(conn, FORMS, "v1")
        conn.execute("SET TimeZone = 'UTC'")
        got = _curated(conn, FORMS, "n, x, day, at")
    t = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert got == [
        (-5, -0.25, date(1, 1, 1), t),
        (7, 1000.0, date(9999, 12, 31), t - timedelta(hours=2)),
        (0, 0.5, date(2024, 2, 29), t.replace(microsecond=123456) + timedelta(hours=5, minutes=30)),
        (2**63 - 1, 5.0, date(2030, 1, 2), t.replace(second=0)),
        (None, -0.0015, None, t),
        (None, None, None, t.replace(microsecond=500000) - timedelta(hours=2)),
        (None, None, None, datetime(1, 1, 1, tzinfo=UTC)),
        (None, None, None, datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        (None, None, None, t + timedelta(hours=5, minutes=30)),
    ]
    # The same instants, read by Python's own ISO 8601 parser.
    assert [r[3] for r in (*got[:3], got[-1])] == [
        datetime.fromisoformat("2030-01-02T03:04:05+00:00"),
        datetime.fromisoformat("2030-01-02 03:04:05+02:00"),
        datetime.fromisoformat("2030-01-02T03:04:05.123456-05:30").astimezone(UTC),
        datetime.strptime("2030-01-02T03:04:05-0530", "%Y-%m-%dT%H:%M:%S%z"),
    ]


def test_coerce_takes_what_postgres_reads_but_dates_stay_iso(db, tmp_path):
    loose = Dataset.model_validate(
        FORMS.model_dump()
        | {
            "name": "loose",
            "columns": [
                c | {"coerce": True} if c["name"] != "id" else c
                for c in FORMS.model_dump()["columns"]
            ],
        }
    )
    with db.connect(autocommit=True) as conn:
        stage_file(
            conn,
            loose,
            "v1",
            tmp_path,
            "loose.csv",
            HEADER + "1,0x1F,0x10,,\n2,1_000,,,\n3,+5,,,\n",
        )
        assert staging_problems(conn, loose, "v1") == []
        promote_version(conn, loose, "v1")
        assert _curated(conn, loose, "n, x") == [(31, 16.0), (1000, None), (5, None)]
        _, path = stage_file(
            conn, loose, "v2", tmp_path, "loose.csv", HEADER + "1,,,now,\n2,,,,epoch\n"
        )
        problems = staging_problems(conn, loose, "v2")
    assert [(p.column, p.examples[0]["row"]) for p in problems] == [("day", 1), ("at", 2)]
    assert f"{path} row 1: 'now'" in problems[0].message


DOCS = Dataset(
    name="docs",
    formats=["jsonl"],
    columns=[
        {"name": "doc_id", "nullable": False},
        {"name": "title"},
        {"name": "tokens", "type": "integer"},
        {"name": "flag", "type": "boolean"},
        {"name": "day", "type": "date"},
        {"name": "meta", "type": "json"},
    ],
    primary_key=["doc_id"],
)
JSON_REFUSED = [
    ("tokens", "12", '"12"'),  # a string where a number is declared
    ("title", 5, "5"),  # a number where a string is declared
    ("title", {"k": 1}, '{"k": 1}'),  # an object where a string is declared
    ("title", [1], "[1]"),
    ("flag", "true", '"true"'),
    ("tokens", True, "true"),
    ("day", 20300103, "20300103"),
]


@pytest.mark.parametrize(
    ("column", "value", "shown"), JSON_REFUSED, ids=[f"{c}={s}" for c, _, s in JSON_REFUSED]
)
def test_a_json_value_of_another_type_is_refused(db, tmp_path, column, value, shown):
    lines = [
        {"doc_id": "a", "title": "t", "tokens": 3, "flag": False, "day": "2030-01-02"},
        {"doc_id": "b", "title": None},
        {"doc_id": "c", column: value},
    ]
    text = "".join(json.dumps(r) + "\n" for r in lines)
    with db.connect(autocommit=True) as conn:
        _, path = stage_file(conn, DOCS, "v1", tmp_path, "docs.jsonl", text)
        problems = staging_problems(conn, DOCS, "v1")
        with pytest.raises(PromotionError):
            promote_version(conn, DOCS, "v1")
    assert [(p.kind, p.column, p.count) for p in problems] == [("cast", column, 1)]
    (problem,) = problems
    assert f"column {column}: 1 value(s) are not a valid" in problem.message
    assert f"(first: {path} row 3: {shown!r})" in problem.message
    assert "coerce: true" in problem.message


def test_coerce_takes_json_values_of_another_type(db, tmp_path):
    loose = DOCS.model_copy(
        update={
            "columns": [
                c.model_copy(update={"coerce": c.name in ("title", "tokens")}) for c in DOCS.columns
            ]
        }
    )
    lines = [
        {"doc_id": "a", "title": 5, "tokens": "12"},
        {"doc_id": "b", "title": {"k": 1}, "tokens": 7, "meta": "free"},
    ]
    text = "".join(json.dumps(r) + "\n" for r in lines)
    with db.connect(autocommit=True) as conn:
        stage_file(conn, loose, "v1", tmp_path, "docs.jsonl", text)
        assert staging_problems(conn, loose, "v1") == []
        promote_version(conn, loose, "v1")
        rows = _curated(conn, loose, "doc_id, title, tokens, meta")
    assert rows == [("a", "5", 12, None), ("b", '{"k": 1}', 7, "free")]
