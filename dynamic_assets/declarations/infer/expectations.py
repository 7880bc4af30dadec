"""Proposed expectations: a non-empty table, non-negative numbers, and the value sets of
columns that look categorical."""

from __future__ import annotations

from dynamic_assets.declarations.infer.types import LOW_CARDINALITY, ColumnStats, Sample
from dynamic_assets.declarations.model import Column, Expectation

LOW_CARDINALITY_MIN_VALUES = 50  # an in-set expectation needs this many non-null values
LOW_CARDINALITY_MAX_LEN = 64  # longer strings are text, not categories
LOW_CARDINALITY_MIN_REPEATS = 10  # each value is seen this many times on average


def looks_categorical(stats: ColumnStats) -> bool:
    """Whether a string column's sample looks like categories rather than free text: at most
    `LOW_CARDINALITY` (20) distinct values, none longer than 64 characters, over at least 50
    non-null values, each value seen 10 times on average (distinct values <= non-null / 10).
    `side` with buy and sell over 60 rows is categorical; a `note` with 3 values over 3 rows,
    or 15 remarks over 60 rows, is not."""
    distinct = stats.distinct
    if not distinct:
        return False
    return (
        len(distinct) <= LOW_CARDINALITY
        and stats.nonnull >= LOW_CARDINALITY_MIN_VALUES
        and len(distinct) * LOW_CARDINALITY_MIN_REPEATS <= stats.nonnull
        and all(len(v) <= LOW_CARDINALITY_MAX_LEN for v in distinct)
    )


def propose_expectations(
    sample: Sample, columns: list[Column], primary_key: list[str]
) -> list[Expectation]:
    """A row count of at least one; values of at least 0 where the sample has no negative
    number; the value set of a categorical string column (`looks_categorical`, not a key).

    What states a fact of the data's kind blocks promotion (severity `error`): a version has
    rows, a quantity is not negative. A value set only warns (severity `warn`): a new version
    naturally brings values the sample did not show, and that alone must not hold it back.
    """
    found = [Expectation(type="expect_table_row_count_to_be_between", min_value=1)]
    for col in columns:
        stats = sample.columns[col.header]
        if col.type in ("integer", "float") and stats.minimum is not None and stats.minimum >= 0:
            found.append(
                Expectation(type="expect_column_values_to_be_between", column=col.name, min_value=0)
            )
        elif col.type == "string" and col.name not in primary_key and looks_categorical(stats):
            found.append(
                Expectation(
                    type="expect_column_values_to_be_in_set",
                    column=col.name,
                    value_set=sorted(stats.distinct or ()),
                    severity="warn",
                )
            )
    return found
