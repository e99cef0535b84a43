"""Performance estimation before labels arrive: CBPE (classification) and DLE (regression).

Both are the published methods of NannyML, implemented here on numpy and
scikit-learn (nannyml itself pins its own pandas/scikit-learn ranges and pulls
LightGBM, plotly and a database layer; the two methods are ~100 lines):

* **CBPE** (confidence-based performance estimation). Calibrate the model's
  scores on labelled reference data (isotonic regression of "label is the
  positive class" on the score), then, on an unlabelled window, the expected
  confusion matrix is ``E[TP] = sum(p_i * [yhat_i = 1])``, ``E[FP] =
  sum((1 - p_i) * [yhat_i = 1])``, ``E[FN] = sum(p_i * [yhat_i = 0])``. Accuracy
  and F1 follow. Valid under covariate shift (``P(y | x)`` unchanged) as long
  as the calibration holds; it cannot see concept drift.
* **DLE** (direct loss estimation). Fit a second model on reference data that
  predicts the monitored model's absolute error from the features and the
  prediction; a window's estimated MAE is the mean of its predicted errors.

:func:`fit_estimator` fits on the reference; :meth:`PerformanceEstimator.estimate`
returns the estimated metric of a window with no labels; :func:`estimation_drop`
compares it with the reference metric. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]
Metric = Literal["accuracy", "f1", "mae"]

DEFAULT_MAX_DROP = {"accuracy": 0.05, "f1": 0.05, "mae": 0.2}
"""An estimated drop beyond this is a finding: absolute for accuracy/F1, relative (20 %) for MAE."""


@dataclass(frozen=True)
class Estimate:
    metric: Metric
    estimated: float
    reference: float
    rows: int

    @property
    def drop(self) -> float:
        """How much worse than the reference: absolute for accuracy/F1, relative for MAE."""
        if self.metric == "mae":
            return (self.estimated - self.reference) / max(self.reference, 1e-12)
        return self.reference - self.estimated


def _confusion_metrics(p: FloatArray, yhat: npt.NDArray[np.bool_]) -> dict[str, float]:
    tp = float(np.sum(p * yhat))
    fp = float(np.sum((1 - p) * yhat))
    fn = float(np.sum(p * ~yhat))
    tn = float(np.sum((1 - p) * ~yhat))
    total = tp + fp + fn + tn
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else math.nan
    return {"accuracy": (tp + tn) / total if total else math.nan, "f1": f1}


@dataclass
class PerformanceEstimator:
    """A fitted CBPE or DLE estimator (built by :func:`fit_estimator`)."""

    method: Literal["cbpe", "dle"]
    metric: Metric
    reference_metric: float
    features: list[str] = field(default_factory=list)
    score: str = "score"
    prediction: str = "prediction"
    threshold: float = 0.5
    model: Any = None

    def estimate(self, window: pd.DataFrame) -> Estimate:
        """The estimated metric of ``window`` (labels not needed; rows with a missing score are skipped)."""
        if self.method == "cbpe":
            s = pd.to_numeric(window[self.score], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            s = s[np.isfinite(s)]
            p = np.asarray(self.model.predict(s), dtype=np.float64)
            est = _confusion_metrics(p, s >= self.threshold)[self.metric] if s.size else math.nan
            return Estimate(self.metric, est, self.reference_metric, int(s.size))
        x = _design(window, self.features, self.prediction)
        ok = np.isfinite(x).all(axis=1) if x.size else np.zeros(0, dtype=bool)
        est = float(np.mean(self.model.predict(x[ok]))) if ok.any() else math.nan
        return Estimate(self.metric, est, self.reference_metric, int(ok.sum()))


def _design(frame: pd.DataFrame, features: list[str], prediction: str) -> FloatArray:
    cols = [*features, prediction]
    out: FloatArray = (
        frame.reindex(columns=cols).apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    )
    return out


def fit_estimator(
    reference: pd.DataFrame,
    *,
    label: str,
    task: Literal["classification", "regression"],
    metric: Metric | None = None,
    score: str = "score",
    prediction: str = "prediction",
    features: list[str] | None = None,
    threshold: float = 0.5,
) -> PerformanceEstimator:
    """Fit CBPE (``task="classification"``, binary, needs a ``score`` column: the model's probability of
    the positive class ``1``) or DLE (``task="regression"``, numeric features) on labelled reference rows.

    The reference should not be the model's training data (its errors there are optimistic).
    """
    if task == "classification":
        from sklearn.isotonic import IsotonicRegression

        s = pd.to_numeric(reference[score], errors="coerce")
        y = pd.to_numeric(reference[label], errors="coerce")
        ok = s.notna() & y.notna()
        if ok.sum() < 100:
            raise ValueError(f"CBPE needs >= 100 reference rows with {score!r} and {label!r}; got {int(ok.sum())}")
        sv, yv = s[ok].to_numpy(dtype=np.float64), (y[ok].to_numpy() == 1)
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(sv, yv.astype(np.float64))
        m: Metric = metric or "accuracy"
        yhat = sv >= threshold
        realised = float(np.mean(yhat == yv)) if m == "accuracy" else _f1(yv, yhat)
        return PerformanceEstimator("cbpe", m, realised, score=score, threshold=threshold, model=iso)
    from sklearn.ensemble import HistGradientBoostingRegressor

    feats = (
        features
        if features is not None
        else [
            c
            for c in reference.columns
            if c not in (label, prediction, score) and pd.api.types.is_numeric_dtype(reference[c].dtype)
        ]
    )
    x = _design(reference, feats, prediction)
    err = np.abs(
        pd.to_numeric(reference[label], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan) - x[:, -1]
    )
    full = np.isfinite(err) & np.isfinite(x).all(axis=1)
    if full.sum() < 100:
        raise ValueError(f"DLE needs >= 100 complete reference rows; got {int(full.sum())}")
    # Squared loss on |error|: its conditional mean is what MAE averages.
    dle = HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05, min_samples_leaf=40, random_state=0).fit(
        x[full], err[full]
    )
    return PerformanceEstimator(
        "dle", "mae", float(np.mean(err[full])), features=feats, prediction=prediction, model=dle
    )


def _f1(y: npt.NDArray[np.bool_], yhat: npt.NDArray[np.bool_]) -> float:
    tp = float(np.sum(y & yhat))
    denom = 2 * tp + float(np.sum(~y & yhat)) + float(np.sum(y & ~yhat))
    return 2 * tp / denom if denom else math.nan


def realised(
    task: Literal["classification", "regression"],
    metric: Metric,
    window: pd.DataFrame,
    *,
    label: str,
    score: str = "score",
    prediction: str = "prediction",
    threshold: float = 0.5,
) -> float:
    """The metric once labels have arrived (same definitions as the estimate)."""
    y = pd.to_numeric(window[label], errors="coerce")
    if task == "regression":
        e = (pd.to_numeric(window[prediction], errors="coerce") - y).abs().dropna()
        return float(e.mean()) if len(e) else math.nan
    s = pd.to_numeric(window[score], errors="coerce")
    ok = s.notna() & y.notna()
    yv, yhat = y[ok].to_numpy() == 1, s[ok].to_numpy(dtype=np.float64) >= threshold
    return float(np.mean(yv == yhat)) if metric == "accuracy" else _f1(yv, yhat)


def is_drop(est: Estimate, max_drop: float | None = None) -> bool:
    """An estimated drop beyond ``max_drop`` (default per metric: :data:`DEFAULT_MAX_DROP`)."""
    limit = DEFAULT_MAX_DROP[est.metric] if max_drop is None else max_drop
    return math.isfinite(est.estimated) and est.drop > limit
