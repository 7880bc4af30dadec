"""Each declared expectation gets its own result, whatever order Great Expectations returns them
in, and agrees with plain Great Expectations run on a pandas DataFrame of the same rows; failure
examples show the value of the column they name, whatever the case or spelling of its name."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import great_expectations as gx
import pandas as pd
import psycopg
import pytest
from great_expectations.data_context.types.base import ProgressBarsConfig
from great_expectations.expectations.registry import get_expectation_impl

from dynamic_assets.datasets.pipeline import validate
from dynamic_assets.datasets.staging import load_version
from dynamic_assets.declarations.model import Dataset
from dynamic_assets.quality.expectations import run_expectations
from dynamic_assets_tests.support.drive_files import write_file
from dynamic_assets_tests.support.staging import recorded_source

VERSION = "v1"
# A few rows of the gapminder data set (country, life expectancy, population).
ROWS = [
    ("Afghanistan", 28.801, 8425333),
    ("Albania", 55.23, 1282697),
    ("Algeria", 43.077, 9279525),
    ("Angola", 30.015, 4232095),
    ("Argentina", 62.485, 17876956),
]
# Two expectations on lifeExp, one passing and one failing, with one on pop in between.
EXPECTATIONS = [
    {"type": "expect_column_values_to_be_between", "column": "lifeExp", "min_value": 0},
    {"type": "expect_column_values_to_be_between", "column": "pop", "min_value": 1_000_000},
    {"type": "expect_column_values_to_be_between", "column": "lifeExp", "min_value": 40},
]


def gapminder(life: str = "lifeExp", expectations: list[dict] | None = None) -> Dataset:
    return Dataset.model_validate(
        {
            "name": "gapminder",
            "columns": [
                {"name": "country", "type": "string"},
                {"name": life, "type": "float"},
                {"name": "pop", "type": "integer"},
            ],
            "expectations": [
                {**e, "column": life} if e.get("column") == "lifeExp" else e
                for e in (EXPECTATIONS if expectations is None else expectations)
            ],
        }
    )


def stage(conn: psycopg.Connection, tmp_path: Path, ds: Dataset) -> None:
    text = io.StringIO()
    out = csv.writer(text, lineterminator="\n")
    out.writerow([c.name for c in ds.columns])
    out.writerows(ROWS)
    local = write_file(tmp_path, "gapminder.csv", text.getvalue())
    load_version(conn, ds, VERSION, [recorded_source(conn, ds, VERSION, local)])


def plain_gx(ds: Dataset) -> list[tuple[bool, int, list]]:
    """(success, unexpected count, unexpected values) of each declared expectation, in
    declaration order, as plain Great Expectations finds them in a pandas DataFrame."""
    frame = pd.DataFrame(ROWS, columns=[c.name for c in ds.columns])
    outcomes = []
    for exp in ds.expectations:  # one suite each: its only result is that expectation's
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        asset = context.data_sources.add_pandas("frame").add_dataframe_asset("rows")
        batch = asset.add_batch_definition_whole_dataframe("all").get_batch(
            batch_parameters={"dataframe": frame}
        )
        suite = gx.ExpectationSuite(name="plain")
        suite.add_expectation(get_expectation_impl(exp.type)(**exp.kwargs))
        (result,) = batch.validate(suite, result_format="SUMMARY").results
        outcomes.append(
            (
                bool(result.success),
                result.result["unexpected_count"],
                result.result["partial_unexpected_list"],
            )
        )
    return outcomes


POP_CHECKS = {
    "same_type": {"type": "expect_column_values_to_be_between", "column": "pop", "min_value": 1e6},
    "other_type": {"type": "expect_column_values_to_not_be_null", "column": "pop"},
}


@pytest.mark.parametrize("pop_name", POP_CHECKS.keys())
def test_expectations_on_one_column_around_another_each_get_their_own_result(
    tmp_path, db, pop_name
):
    pop_check = POP_CHECKS[pop_name]
    ds = gapminder(expectations=[EXPECTATIONS[0], pop_check, EXPECTATIONS[2]])
    with psycopg.connect(db.uri, autocommit=True) as conn:
        stage(conn, tmp_path, ds)

    outcomes = run_expectations(db.uri, ds, VERSION)

    assert [o.check_name for o in outcomes] == [
        "lifeExp_between",
        {"same_type": "pop_between", "other_type": "pop_not_null"}[pop_name],
        "lifeExp_between_2",
    ]
    assert [o.expectation.kwargs for o in outcomes] == [e.kwargs for e in ds.expectations]
    assert [o.error for o in outcomes] == [None, None, None]
    assert [o.success for o in outcomes] == [True, True, False]
    assert [o.unexpected_count for o in outcomes] == [0, 0, 2]
    assert [[e["value"] for e in o.examples] for o in outcomes] == [[], [], [28.801, 30.015]]
    assert [(e["file"], e["row"]) for e in outcomes[2].examples] == [
        (f"datasets/gapminder/{VERSION}/gapminder.csv", 1),
        (f"datasets/gapminder/{VERSION}/gapminder.csv", 4),
    ]
    # The same suite, run by plain Great Expectations on a DataFrame of the same rows.
    assert [
        (o.success, o.unexpected_count, [e["value"] for e in o.examples]) for o in outcomes
    ] == plain_gx(ds)


@pytest.mark.parametrize("life", ["lifeExp", "life Exp", "Life-Exp"])
def test_a_failure_example_shows_the_value_of_a_column_named_in_any_case_or_spelling(
    tmp_path, db, life
):
    ds = gapminder(life, [EXPECTATIONS[2]])
    with psycopg.connect(db.uri, autocommit=True) as conn:
        stage(conn, tmp_path, ds)

    checked = validate(db, ds, VERSION)

    (outcome,) = checked.expectations
    assert not outcome.success and outcome.unexpected_count == 2
    assert [e["value"] for e in outcome.examples] == [28.801, 30.015]
    assert f"first: datasets/gapminder/{VERSION}/gapminder.csv row 1: 28.801" in outcome.message
    assert outcome.message in checked.blocking_failures


def test_the_expectations_judge_the_typed_table_and_agree_with_plain_gx(tmp_path, db):
    ds = gapminder()
    with psycopg.connect(db.uri, autocommit=True) as conn:
        stage(conn, tmp_path, ds)

    checked = validate(db, ds, VERSION)

    # The version failed a blocking check: the typed table the checks judged is not kept.
    assert checked.problems == [] and checked.build is None
    outcomes = checked.expectations
    assert [
        (o.success, o.unexpected_count, [e["value"] for e in o.examples]) for o in outcomes
    ] == plain_gx(ds)
    assert [(e["file"], e["row"]) for e in outcomes[2].examples] == [
        (f"datasets/gapminder/{VERSION}/gapminder.csv", 1),
        (f"datasets/gapminder/{VERSION}/gapminder.csv", 4),
    ]
    assert outcomes[2].file_ids and outcomes[2].unattributed is None
    with psycopg.connect(db.uri) as conn:
        assert conn.execute("SELECT count(*) FROM curated_builds").fetchone() == (0,)

    passing = gapminder(expectations=EXPECTATIONS[:2])
    checked = validate(db, passing, VERSION)
    assert checked.blocking_failures == [] and checked.build is not None
    with psycopg.connect(db.uri) as conn:
        table, rows = conn.execute("SELECT table_name, rows FROM curated_builds").fetchone()
    assert (table, rows) == (checked.build.table, len(ROWS))


def test_a_value_that_does_not_cast_is_located_and_no_expectation_fails_on_it(tmp_path, db):
    ds = gapminder(expectations=EXPECTATIONS[:2])
    text = io.StringIO()
    out = csv.writer(text, lineterminator="\n")
    out.writerow([c.name for c in ds.columns])
    out.writerows(ROWS[:2])
    out.writerow(("Australia", 69.12, "many"))
    out.writerows(ROWS[2:])
    local = write_file(tmp_path, "gapminder.csv", text.getvalue())
    with psycopg.connect(db.uri, autocommit=True) as conn:
        load_version(conn, ds, VERSION, [recorded_source(conn, ds, VERSION, local)])

    checked = validate(db, ds, VERSION)

    (problem,) = checked.problems
    path = f"datasets/gapminder/{VERSION}/gapminder.csv"
    assert problem.kind == "cast" and problem.column == "pop" and problem.count == 1
    assert f"column pop: 1 value(s) are not a valid integer (first: {path} row 3" in (
        problem.message
    )
    assert problem.examples == [{"file": path, "row": 3, "value": "many"}]
    assert checked.blocking_failures == [problem.message]
    assert [(o.success, o.unexpected_count, o.error) for o in checked.expectations] == [
        (True, 0, None),
        (True, 0, None),
    ]
    assert checked.build is None
