"""Fitting without tracking: a regression scored against its baseline, a classification with
its own metrics, and errors that name the model and the problem."""

from __future__ import annotations

import pytest

from dynamic_assets.training.fit import TrainingError, fit_model
from dynamic_assets_tests.training.test_features import bars, model


def test_a_regression_is_scored_on_the_held_out_rows_against_a_baseline(decls):
    fitted = fit_model(model(), decls.dataset("market"), bars(30))
    assert set(fitted.metrics) == {
        "test_rmse",
        "test_mae",
        "test_r2",
        "train_rmse",
        "baseline_rmse",
    }
    assert len(fitted.predictions) == len(fitted.split.X_test) > 0
    assert fitted.pipeline.named_steps["model"].alpha == 1.0  # Ridge's default


def test_a_classification_gets_classification_metrics(decls):
    m = model(
        task="classification",
        target="exchange",
        features=["ret_1d", "range_1d", "vol_3d", "close"],
        estimator="sklearn.linear_model.LogisticRegression",
        hyperparameters={"max_iter": 200},
        split="random",
        metric=None,
    )
    assert m.metric == "accuracy"
    fitted = fit_model(m, decls.dataset("market"), bars(30))
    assert set(fitted.metrics) == {
        "test_accuracy",
        "test_f1",
        "train_accuracy",
        "baseline_accuracy",
        "test_log_loss",
    }
    # Closes of 10 and 50 tell the two exchanges apart.
    assert fitted.metrics["test_accuracy"] == 1.0 > fitted.metrics["baseline_accuracy"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"estimator": "sklearn.linear_model.NoSuchModel"},
            "sklearn.linear_model has no NoSuchModel",
        ),
        ({"estimator": "no_such_package.Model"}, "cannot import no_such_package"),
        ({"estimator": "sklearn.base.clone"}, "is not a class with fit"),
        ({"hyperparameters": {"alpah": 1.0}}, "does not take these hyperparameters"),
    ],
)
def test_a_bad_estimator_or_hyperparameter_is_named(decls, change, message):
    with pytest.raises(TrainingError, match=message):
        fit_model(model(**change), decls.dataset("market"), bars(12))
