"""Model declarations and training frames: derived columns per series in time order, rows
missing a value left out, a time split that holds out the latest periods without leaking."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dynamic_assets.declarations.model import (
    DEMO_CONFIG,
    ConfigError,
    Declarations,
    Model,
    load_declarations,
)
from dynamic_assets.training.features import (
    TrainingDataError,
    build_training_frame,
    derive,
    split,
)

DERIVED = [
    {"name": "ret_1d", "kind": "log_return", "column": "close", "periods": 1},
    {"name": "simple_1d", "kind": "return", "column": "close", "periods": 1},
    {"name": "range_1d", "kind": "log_ratio", "column": "high", "over": "low"},
    {"name": "vol_3d", "kind": "rolling_std", "column": "ret_1d", "window": 3},
    {"name": "close_prev", "kind": "lag", "column": "close", "periods": 1},
    {"name": "next_return", "kind": "log_return", "column": "close", "periods": -1},
]


def model(**overrides) -> Model:
    spec = {
        "name": "m",
        "dataset": "market",
        "group_by": ["symbol"],
        "order_by": ["date"],
        "derived": DERIVED,
        "features": ["ret_1d", "range_1d", "vol_3d", "exchange"],
        "target": "next_return",
        "estimator": "sklearn.linear_model.Ridge",
        "split": "time",
        "test_size": 0.25,
    }
    spec.update(overrides)
    return Model.model_validate(spec)


def bars(days: int = 12) -> pd.DataFrame:
    """Two symbols, rows shuffled: derivations must follow each symbol's own dates."""
    rng = np.random.default_rng(1)
    rows = []
    for symbol, exchange, start in (("AAA", "NYSE", 10.0), ("BBB", "NASDAQ", 50.0)):
        close = start
        for d in pd.date_range("2024-06-03", periods=days, freq="B"):
            close *= math.exp(rng.normal(0, 0.02))
            rows.append(
                {
                    "date": d,
                    "symbol": symbol,
                    "exchange": exchange,
                    "open": close * 0.99,
                    "high": close * 1.02,
                    "low": close * 0.97,
                    "close": close,
                    "volume": 1000,
                }
            )
    frame = pd.DataFrame(rows).sample(frac=1, random_state=3).reset_index(drop=True)
    frame["symbol"] = frame["symbol"].astype("string")
    frame["exchange"] = frame["exchange"].astype("string")
    frame["volume"] = frame["volume"].astype("Int64")
    return frame


def test_derived_columns_follow_each_series_in_time_order(decls):
    frame = derive(bars(), model())
    a = frame[frame["symbol"] == "AAA"].sort_values("date")
    close = a["close"].to_numpy()
    np.testing.assert_allclose(a["next_return"].to_numpy()[:-1], np.log(close[1:] / close[:-1]))
    assert math.isnan(a["next_return"].iloc[-1])  # no next day for the last row
    np.testing.assert_allclose(a["ret_1d"].to_numpy()[1:], np.log(close[1:] / close[:-1]))
    np.testing.assert_allclose(a["simple_1d"].to_numpy()[1:], close[1:] / close[:-1] - 1)
    assert math.isnan(a["ret_1d"].iloc[0])
    np.testing.assert_allclose(a["close_prev"].to_numpy()[1:], close[:-1])
    np.testing.assert_allclose(a["range_1d"], np.log(1.02 / 0.97))
    expected_vol = pd.Series(np.log(close[1:] / close[:-1])).rolling(3).std().to_numpy()
    np.testing.assert_allclose(a["vol_3d"].to_numpy()[1:], expected_vol)
    # The frame keeps its original row order.
    assert list(frame.index) == list(range(len(frame)))


def test_rows_missing_a_feature_or_the_target_are_left_out(decls):
    tf = build_training_frame(bars(12), model(), decls.dataset("market"))
    # Per symbol: ret_1d misses day 1, vol_3d days 1-3, next_return the last day.
    assert (tf.rows_read, len(tf.X), tf.rows_dropped) == (24, 16, 8)
    assert tf.numeric == ["ret_1d", "range_1d", "vol_3d"] and tf.categorical == ["exchange"]
    assert not tf.X.isna().any().any() and not tf.y.isna().any()


def test_a_time_split_holds_out_the_latest_periods_and_purges_the_look_ahead(decls):
    m = model()
    tf = build_training_frame(bars(12), m, decls.dataset("market"))
    sp = split(tf, m)
    train_dates = tf.order[sp.X_train.index].map(lambda k: k[0])
    test_dates = tf.order[sp.X_test.index].map(lambda k: k[0])
    # 8 usable days per symbol: 2 held out, 1 purged (its next-day target is a held-out close).
    assert sorted(set(test_dates)) == sorted(set(tf.order.map(lambda k: k[0])))[-2:]
    assert len(set(train_dates)) == 5 and sp.purged_rows == 2
    gap = pd.bdate_range(train_dates.max(), test_dates.min())
    assert len(gap) == 3  # last train day, the purged day, first held-out day
    assert "held out 2 of 8 periods" in sp.description and "purged 1" in sp.description


def test_a_random_split_is_seeded(decls):
    m = model(split="random", random_state=7)
    tf = build_training_frame(bars(12), m, decls.dataset("market"))
    a, b = split(tf, m), split(tf, m)
    assert list(a.X_test.index) == list(b.X_test.index) and len(a.X_test) == 4


def test_rows_not_unique_per_series_and_period_are_refused(decls):
    frame = bars(6)
    frame = pd.concat([frame, frame.iloc[:1]], ignore_index=True)
    with pytest.raises(TrainingDataError, match="not unique by group_by"):
        build_training_frame(frame, model(), decls.dataset("market"))


def test_the_demo_declares_models_on_market():
    decls = load_declarations(DEMO_CONFIG)
    assert {m.name: (m.dataset, m.versions) for m in decls.models} == {
        "market_next_return": ("market", "every"),
        "market_next_range": ("market", "latest"),
    }
    assert decls.model("market_next_return").metric == "rmse"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"features": ["ret_1d", "nope"]}, "column 'nope' is not declared or derived"),
        ({"target": "symbol"}, "a regression target must be integer or float"),
        ({"features": ["next_return"], "target": "close"}, "look ahead"),
        (
            {
                "derived": [
                    *DERIVED,
                    {
                        "name": "avg_next",
                        "kind": "rolling_mean",
                        "column": "next_return",
                        "window": 2,
                    },
                ],
                "features": ["ret_1d", "avg_next"],
            },
            "computed from future values",
        ),
        ({"metric": "accuracy"}, "does not fit a regression"),
        ({"hyperparameters": {"dataset": 1}}, "clash with the parameters"),
        ({"split": "time", "order_by": []}, "split: time needs order_by"),
        (
            {"derived": [{"name": "x", "kind": "log", "column": "symbol"}], "features": ["x"]},
            "derivations need integer or float columns",
        ),
        (
            {"derived": [{"name": "close", "kind": "log", "column": "open"}]},
            "shadows a declared column",
        ),
        (
            {"derived": [{"name": "r", "kind": "log_ratio", "column": "high"}]},
            "log_ratio needs `over`",
        ),
        ({"estimator": "Ridge"}, "not a dotted path"),
        ({"dataset": "weather"}, "which is not declared"),
    ],
)
def test_declarations_refuse_a_model_that_does_not_fit_its_dataset(decls, change, message):
    spec = model().model_dump(mode="json", exclude={"metric"}) | change
    with pytest.raises((ValueError, ConfigError), match=message):
        Declarations.model_validate(
            {"datasets": [d.model_dump() for d in decls.datasets], "models": [spec]}
        )
