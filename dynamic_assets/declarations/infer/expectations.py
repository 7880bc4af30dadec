"""Proposed expectations: a non-empty table, non-negative numbers, and small sets of categories."""

from __future__ import annotations

from dynamic_assets.declarations.infer.types import Sample
from dynamic_assets.declarations.model import Column, Expectation

LOW_CARDINALITY_MIN_VALUES = 50  # an in-set expectation needs this many non-null values
LOW_CARDINALITY_MAX_LEN = 64  # longer strings are text, not categories


def propose_expectations(
    sample: Sample, columns: list[Column], primary_key: list[str]
) -> list[Expectation]:
    """A row count of at least one; values of at least 0 where the sample has no negative
    number; the set of values of a short-string column with few distinct values (not a key)."""
    found = [Expectation(type="expect_table_row_count_to_be_between", min_value=1)]
    for col in columns:
        stats = sample.columns[col.name]
        if col.type in ("integer", "float") and stats.minimum is not None and stats.minimum >= 0:
            found.append(
                Expectation(type="expect_column_values_to_be_between", column=col.name, min_value=0)
            )
        elif (
            col.type == "string"
            and col.name not in primary_key
            and stats.distinct
            and stats.nonnull >= LOW_CARDINALITY_MIN_VALUES
            and all(len(v) <= LOW_CARDINALITY_MAX_LEN for v in stats.distinct)
        ):
            found.append(
                Expectation(
                    type="expect_column_values_to_be_in_set",
                    column=col.name,
                    value_set=sorted(stats.distinct),
                )
            )
    return found
