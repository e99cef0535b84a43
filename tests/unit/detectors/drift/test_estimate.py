"""CBPE and DLE: the estimate follows the realised metric under covariate shift, without labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from aiopsd.detectors.drift.estimate import Estimate, fit_estimator, is_drop, realised


def _clf_data(rng: np.random.Generator, n: int, spread: float) -> pd.DataFrame:
    x = rng.normal(size=(n, 2)) * spread
    y = (rng.random(n) < 1 / (1 + np.exp(-(2 * x[:, 0] - x[:, 1])))).astype(int)
    return pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "label": y})


def test_cbpe_tracks_accuracy_as_rows_move_to_the_boundary() -> None:
    rng = np.random.default_rng(0)
    train = _clf_data(rng, 3000, 1.0)
    model = LogisticRegression().fit(train[["x0", "x1"]], train["label"])
    ref = _clf_data(rng, 4000, 1.0)
    ref["score"] = model.predict_proba(ref[["x0", "x1"]])[:, 1]
    est = fit_estimator(ref, label="label", task="classification")
    shifted = _clf_data(rng, 4000, 0.4)
    shifted["score"] = model.predict_proba(shifted[["x0", "x1"]])[:, 1]
    e = est.estimate(shifted.drop(columns=["label"]))
    truth = realised("classification", "accuracy", shifted, label="label")
    assert truth < est.reference_metric - 0.1  # the shift really hurts
    assert e.estimated == pytest.approx(truth, abs=0.03)
    assert is_drop(e)


def test_dle_tracks_mae_when_traffic_moves_to_noisy_rows() -> None:
    rng = np.random.default_rng(1)

    def draw(n: int, shift: float) -> pd.DataFrame:
        x = rng.normal(size=(n, 2))
        x[:, 1] += shift
        y = 2 * x[:, 0] + rng.normal(size=n) * (0.2 + np.abs(x[:, 1]))
        return pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "label": y})

    train = draw(3000, 0.0)
    model = LinearRegression().fit(train[["x0", "x1"]], train["label"])
    ref = draw(4000, 0.0)
    ref["prediction"] = model.predict(ref[["x0", "x1"]])
    est = fit_estimator(ref, label="label", task="regression")
    w = draw(4000, 1.5)
    w["prediction"] = model.predict(w[["x0", "x1"]])
    e = est.estimate(w.drop(columns=["label"]))
    truth = realised("regression", "mae", w, label="label")
    assert truth > 1.3 * est.reference_metric
    assert abs(e.estimated - truth) / truth < 0.10
    assert is_drop(e)


def test_no_drop_is_not_a_finding_and_too_few_rows_is_an_error() -> None:
    assert not is_drop(Estimate("accuracy", 0.84, 0.85, 1000))
    assert is_drop(Estimate("mae", 1.3, 1.0, 1000))
    with pytest.raises(ValueError, match="CBPE needs"):
        fit_estimator(pd.DataFrame({"score": [0.5] * 10, "label": [1] * 10}), label="label", task="classification")
