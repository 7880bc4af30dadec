"""Training frames from a curated version: derived columns, features X, target y, held-out split.

Plain pandas, no Dagster, no database: `build_training_frame(curated_df, model, dataset)` takes
the DataFrame that `read_curated` returns and the model's declaration.

Derived columns are computed per series (`group_by`, e.g. one symbol) in time order (`order_by`,
e.g. date), so a next-period return is the next row *of the same symbol*. Rows that miss a
feature or the target (the first rows of a series for a lag, the last for a look-ahead target)
are left out and counted. A `time` split holds out the last `test_size` of the order values and
purges, from the training rows, the periods whose look-ahead target reaches into the held-out
ones, so no held-out value leaks into training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dynamic_assets.declarations.model import Dataset, Derived, Model


class TrainingDataError(ValueError):
    """The curated data cannot make a training set for this model; the message says why."""


@dataclass(frozen=True)
class TrainingFrame:
    """Features and target, one row per usable curated row (index = position in the curated frame)."""

    X: pd.DataFrame
    y: pd.Series
    order: pd.Series | None  # the order_by key of each row (for a time split)
    numeric: list[str]
    categorical: list[str]
    rows_read: int

    @property
    def rows_dropped(self) -> int:
        return self.rows_read - len(self.X)


@dataclass(frozen=True)
class Split:
    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series
    description: str
    purged_rows: int = 0


def _as_float(series: pd.Series) -> pd.Series:
    return pd.Series(
        series.to_numpy(dtype="float64", na_value=np.nan), index=series.index, name=series.name
    )


def _shift(values: pd.Series, keys: pd.DataFrame | None, periods: int) -> pd.Series:
    if keys is None:
        return values.shift(periods)
    return values.groupby([keys[c] for c in keys.columns], sort=False, dropna=False).shift(periods)


def _rolling(values: pd.Series, keys: pd.DataFrame | None, window: int, how: str) -> pd.Series:
    def roll(s: pd.Series) -> pd.Series:
        r = s.rolling(window, min_periods=window)
        return r.mean() if how == "mean" else r.std(ddof=1)

    if keys is None:
        return roll(values)
    grouped = values.groupby([keys[c] for c in keys.columns], sort=False, dropna=False)
    return grouped.transform(roll)


def _derive_one(d: Derived, frame: pd.DataFrame, keys: pd.DataFrame | None) -> pd.Series:
    x = _as_float(frame[d.column])
    with np.errstate(divide="ignore", invalid="ignore"):
        if d.kind == "log":
            out = np.log(x.where(x > 0))
        elif d.kind == "log_ratio":
            ratio = x / _as_float(frame[d.over])
            out = np.log(ratio.where(ratio > 0))
        elif d.kind == "lag":
            out = _shift(x, keys, d.periods)
        elif d.kind in ("return", "log_return"):
            other = _shift(x, keys, d.periods)
            ratio = x / other if d.periods > 0 else other / x
            ratio = ratio.where(np.isfinite(ratio))
            out = ratio - 1 if d.kind == "return" else np.log(ratio.where(ratio > 0))
        elif d.kind == "rolling_mean":
            out = _rolling(x, keys, int(d.window or 2), "mean")
        else:
            out = _rolling(x, keys, int(d.window or 2), "std")
    out = pd.Series(np.asarray(out, dtype="float64"), index=frame.index, name=d.name)
    return out.where(np.isfinite(out))


def derive(frame: pd.DataFrame, model: Model) -> pd.DataFrame:
    """The curated frame with the model's derived columns added (rows in the original order)."""
    if not model.derived:
        return frame
    missing = [c for c in [*model.group_by, *model.order_by] if c not in frame.columns]
    if missing:
        raise TrainingDataError(f"model {model.name}: the data has no column(s) {missing}")
    ordered = frame.sort_values([*model.group_by, *model.order_by], kind="stable")
    if model.order_by and ordered.duplicated([*model.group_by, *model.order_by]).any():
        dupes = ordered[ordered.duplicated([*model.group_by, *model.order_by], keep=False)]
        example = dupes[[*model.group_by, *model.order_by]].head(2).to_dict("records")
        raise TrainingDataError(
            f"model {model.name}: rows are not unique by group_by + order_by "
            f"{[*model.group_by, *model.order_by]} (e.g. {example}); a lag or return needs one "
            "row per series and period"
        )
    keys = ordered[model.group_by] if model.group_by else None
    for d in model.derived:
        ordered[d.name] = _derive_one(d, ordered, keys)
    return ordered.loc[frame.index]


def build_training_frame(frame: pd.DataFrame, model: Model, ds: Dataset) -> TrainingFrame:
    """Features and target of the model from one curated version (a `read_curated` DataFrame)."""
    rows = len(frame)
    if rows == 0:
        raise TrainingDataError(f"model {model.name}: {ds.name} has no rows to train on")
    frame = derive(frame.reset_index(drop=True), model)
    declared = {c.name: c.type for c in ds.columns}
    numeric, categorical = [], []
    columns: dict[str, pd.Series] = {}
    for col in model.features:
        kind = declared.get(col, "float")  # derived columns are float
        if kind in ("string", "boolean"):
            categorical.append(col)
            values = frame[col].astype("object")
            columns[col] = values.where(frame[col].notna(), None)
        else:
            numeric.append(col)
            columns[col] = _as_float(frame[col])
    X = pd.DataFrame(columns, index=frame.index)
    if model.task == "regression":
        y = _as_float(frame[model.target])
    else:
        y = frame[model.target].astype("object").where(frame[model.target].notna(), None)
    usable = X.notna().all(axis=1) & y.notna()
    if not usable.any():
        raise TrainingDataError(
            f"model {model.name}: none of the {rows} rows of {ds.name} has every feature and "
            "the target (check the derived columns and their periods/windows)"
        )
    order = None
    if model.order_by:
        order = pd.Series(
            list(frame[model.order_by].itertuples(index=False, name=None)), index=frame.index
        )[usable]
    return TrainingFrame(
        X=X[usable],
        y=y[usable].rename(model.target),
        order=order,
        numeric=numeric,
        categorical=categorical,
        rows_read=rows,
    )


def _look_ahead(model: Model) -> int:
    """How many periods the target reaches into the future (0 if it does not)."""
    by_name = {d.name: d for d in model.derived}
    reach, todo, seen = 0, [model.target], set()
    while todo:
        name = todo.pop()
        d = by_name.get(name)
        if d is None or name in seen:
            continue
        seen.add(name)
        if d.looks_ahead:
            reach = max(reach, -d.periods)
        todo.extend(d.inputs)
    return reach


def split(tf: TrainingFrame, model: Model) -> Split:
    """The held-out split the model declares (time: the latest periods; random: seeded)."""
    n = len(tf.X)
    if n < 4:
        raise TrainingDataError(
            f"model {model.name}: only {n} usable row(s); a held-out split needs at least 4"
        )
    if model.split == "random":
        from sklearn.model_selection import train_test_split

        X_train, X_test, y_train, y_test = train_test_split(
            tf.X, tf.y, test_size=model.test_size, random_state=model.random_state
        )
        return Split(
            X_train,
            X_test,
            y_train,
            y_test,
            f"random {1 - model.test_size:.0%}/{model.test_size:.0%}, seed {model.random_state}",
        )
    assert tf.order is not None
    values = sorted(set(tf.order))
    n_test = max(1, round(len(values) * model.test_size))
    purge = _look_ahead(model)
    if len(values) - n_test - purge < 1:
        raise TrainingDataError(
            f"model {model.name}: {len(values)} distinct {model.order_by} value(s) are too few "
            f"for a time split holding out {n_test} and purging {purge}"
        )
    first_test = values[len(values) - n_test]
    train_values = set(values[: len(values) - n_test - purge])
    test_mask = tf.order.map(lambda v: v >= first_test).astype(bool)
    train_mask = tf.order.map(lambda v: v in train_values).astype(bool)
    described = ", ".join(str(v.date() if hasattr(v, "date") else v) for v in first_test)
    return Split(
        tf.X[train_mask],
        tf.X[test_mask],
        tf.y[train_mask],
        tf.y[test_mask],
        f"time: held out {n_test} of {len(values)} periods from {described}"
        + (f", purged {purge} before them" if purge else ""),
        purged_rows=int((~train_mask & ~test_mask).sum()),
    )
