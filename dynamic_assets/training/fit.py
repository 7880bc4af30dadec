"""Fitting and scoring a declared model, with no tracking and no I/O: the estimator named in the
declaration behind standardized numeric and one-hot categorical features, fitted on the training
split and scored on the held-out split against a naive baseline."""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dynamic_assets.declarations.model import Dataset, Model
from dynamic_assets.training.features import Split, TrainingFrame, build_training_frame, split


class TrainingError(RuntimeError):
    """A training run could not be made; the message names the model, version and reason."""


def import_estimator(path: str) -> type:
    """The estimator class at a dotted path, e.g. sklearn.linear_model.Ridge."""
    module, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise TrainingError(f"estimator {path}: cannot import {module}: {exc}") from None
    except AttributeError:
        raise TrainingError(f"estimator {path}: {module} has no {name}") from None
    if not isinstance(cls, type) or not all(hasattr(cls, m) for m in ("fit", "predict")):
        raise TrainingError(f"estimator {path} is not a class with fit() and predict()")
    return cls


def build_pipeline(model: Model, numeric: list[str], categorical: list[str]) -> Any:
    """Standardize numeric features, one-hot encode the others, then the declared estimator."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cls = import_estimator(model.estimator)
    params = dict(model.hyperparameters)
    try:
        estimator = cls(**params)
    except TypeError as exc:
        raise TrainingError(
            f"model {model.name}: {model.estimator} does not take these hyperparameters "
            f"{sorted(params)}: {exc}"
        ) from None
    seeded = hasattr(estimator, "get_params") and "random_state" in estimator.get_params()
    if seeded and "random_state" not in params:
        estimator.set_params(random_state=model.random_state)
    steps = []
    if numeric:
        steps.append(("numeric", StandardScaler(), numeric))
    if categorical:
        steps.append(
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                categorical,
            )
        )
    return Pipeline([("prepare", ColumnTransformer(steps)), ("model", estimator)])


def evaluate(model: Model, pipeline: Any, sp: Split) -> tuple[dict[str, float], np.ndarray]:
    """Held-out metrics (`test_*`), the training fit and a naive baseline, and the predictions."""
    from sklearn import metrics as m

    predicted = pipeline.predict(sp.X_test)
    fitted = pipeline.predict(sp.X_train)
    if model.task == "regression":
        y_test = sp.y_test.to_numpy(dtype="float64")
        y_train = sp.y_train.to_numpy(dtype="float64")
        baseline = np.full(len(y_test), y_train.mean())
        scores = {
            "test_rmse": m.root_mean_squared_error(y_test, predicted),
            "test_mae": m.mean_absolute_error(y_test, predicted),
            "test_r2": m.r2_score(y_test, predicted),
            "train_rmse": m.root_mean_squared_error(y_train, fitted),
            "baseline_rmse": m.root_mean_squared_error(y_test, baseline),
        }
    else:
        y_test = sp.y_test.astype(str).to_numpy()
        y_train = sp.y_train.astype(str).to_numpy()
        predicted_s = np.asarray(predicted).astype(str)
        majority = pd.Series(y_train).mode().iloc[0]
        scores = {
            "test_accuracy": m.accuracy_score(y_test, predicted_s),
            "test_f1": m.f1_score(y_test, predicted_s, average="macro"),
            "train_accuracy": m.accuracy_score(y_train, np.asarray(fitted).astype(str)),
            "baseline_accuracy": m.accuracy_score(y_test, np.full(len(y_test), majority)),
        }
        if hasattr(pipeline, "predict_proba"):
            try:
                proba = pipeline.predict_proba(sp.X_test)
                labels = [str(c) for c in pipeline.classes_]
                scores["test_log_loss"] = m.log_loss(y_test, proba, labels=labels)
            except (AttributeError, ValueError):
                pass  # an estimator without probabilities, or a class missing from the test set
    return {k: float(v) for k, v in scores.items()}, predicted


@dataclass(frozen=True)
class Fitted:
    """A fitted model and how it scored."""

    pipeline: Any
    frame: TrainingFrame
    split: Split
    metrics: dict[str, float]
    predictions: np.ndarray
    seconds: float


def fit_model(model: Model, ds: Dataset, frame: pd.DataFrame) -> Fitted:
    """Build features from a curated frame, split, fit and evaluate (no tracking, no I/O)."""
    started = time.perf_counter()
    tf = build_training_frame(frame, model, ds)
    sp = split(tf, model)
    pipeline = build_pipeline(model, tf.numeric, tf.categorical)
    try:
        pipeline.fit(sp.X_train, sp.y_train)
    except (ValueError, TypeError) as exc:
        raise TrainingError(
            f"model {model.name}: {model.estimator} failed to fit {len(sp.X_train)} rows: {exc}"
        ) from exc
    scores, predicted = evaluate(model, pipeline, sp)
    return Fitted(pipeline, tf, sp, scores, predicted, time.perf_counter() - started)
