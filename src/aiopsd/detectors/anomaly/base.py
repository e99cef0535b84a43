"""The contract every anomaly detector follows (scikit-learn style, streaming).

A detector is built with keyword-only parameters stored unchanged, learns in
``fit(timestamps, values)`` (returns ``self``), keeps learnt state in attributes
ending in ``_`` and raises :class:`~aiopsd.errors.NotFittedError` before fit.
``update(timestamp, value)`` is causal: the score of a point uses only that point
and the ones before it, and the state it keeps per series is bounded.
``anomaly_score >= 1`` means anomalous, in every detector.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, NamedTuple, Protocol, Self, runtime_checkable

import numpy as np
import numpy.typing as npt

from aiopsd.errors import NotFittedError

FloatArray = npt.NDArray[np.float64]


class Score(NamedTuple):
    """One streaming score. Band fields are NaN where the model has no band."""

    anomaly_score: float
    yhat: float = math.nan
    yhat_lower: float = math.nan
    yhat_upper: float = math.nan


class Scores(NamedTuple):
    """Batch scores, aligned with the input arrays."""

    anomaly_score: FloatArray
    yhat: FloatArray
    yhat_lower: FloatArray
    yhat_upper: FloatArray


@runtime_checkable
class AnomalyDetector(Protocol):
    """What the daemon, the backtest and the contract suite rely on."""

    def get_params(self) -> dict[str, Any]: ...

    def fit(self, timestamps: FloatArray, values: FloatArray) -> Self: ...

    def update(self, timestamp: float, value: float) -> Score: ...

    def score(self, timestamps: FloatArray, values: FloatArray) -> Scores: ...


class DetectorBase:
    """What every detector shares: scikit-learn's ``get_params`` and the fitted check.

    ``get_params`` reads the constructor's keyword-only parameters (stored unchanged
    as attributes of the same name), so adding a parameter needs no second list.
    """

    _fitted_attr = "buffer_"

    def get_params(self) -> dict[str, Any]:
        sig = inspect.signature(type(self).__init__)
        return {p.name: getattr(self, p.name) for p in sig.parameters.values() if p.kind == p.KEYWORD_ONLY}

    def _check_fitted(self) -> None:
        if not hasattr(self, self._fitted_attr):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() first")


def stream_scores(detector: AnomalyDetector, timestamps: FloatArray, values: FloatArray) -> Scores:
    """Score arrays by calling ``update`` point by point (the causal reference path)."""
    n = len(values)
    out = np.full((4, n), np.nan)
    for i in range(n):
        s = detector.update(float(timestamps[i]), float(values[i]))
        out[0, i], out[1, i], out[2, i], out[3, i] = s
    return Scores(out[0], out[1], out[2], out[3])
