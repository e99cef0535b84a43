"""Robust rolling median / MAD detector: the simplest detector worth trusting."""

from __future__ import annotations

import math
from typing import Any, Self

import numpy as np

from aiopsd.detectors.anomaly.base import FloatArray, Score, Scores, stream_scores
from aiopsd.errors import NotFittedError

_MAD_TO_SIGMA = 1.4826


class MADDetector:
    """Score = robust z-score of a point against the trailing ``window`` points / ``threshold``.

    The median and the median absolute deviation of the last ``window`` finite
    values (the point itself excluded) give the expected value and band; a
    point ``threshold`` robust standard deviations away scores 1.0.
    """

    def __init__(self, *, window: int = 288, threshold: float = 3.5, min_periods: int = 12,
                 min_scale: float = 1e-9) -> None:
        self.window = window
        self.threshold = threshold
        self.min_periods = min_periods
        self.min_scale = min_scale

    def get_params(self) -> dict[str, Any]:
        return {"window": self.window, "threshold": self.threshold,
                "min_periods": self.min_periods, "min_scale": self.min_scale}

    def fit(self, timestamps: FloatArray, values: FloatArray) -> Self:
        if self.window < 2 or self.threshold <= 0 or self.min_periods < 1:
            raise ValueError("window must be >= 2, threshold > 0 and min_periods >= 1")
        vals = np.asarray(values, dtype=np.float64)
        finite = vals[np.isfinite(vals)][-self.window:]
        self.buffer_ = np.full(self.window, np.nan)
        self.count_ = int(finite.size)
        self.buffer_[: finite.size] = finite
        self.pos_ = int(finite.size) % self.window
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "buffer_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() first")

    def update(self, timestamp: float, value: float) -> Score:
        self._check_fitted()
        if not math.isfinite(value):
            return Score(math.nan)
        n = min(self.count_, self.window)
        score = Score(0.0)
        if n >= self.min_periods:
            hist = self.buffer_[:n] if self.count_ < self.window else self.buffer_
            med = float(np.median(hist))
            scale = max(_MAD_TO_SIGMA * float(np.median(np.abs(hist - med))), self.min_scale)
            width = self.threshold * scale
            score = Score(abs(value - med) / width, med, med - width, med + width)
        self.buffer_[self.pos_] = value
        self.pos_ = (self.pos_ + 1) % self.window
        self.count_ += 1
        return score

    def score(self, timestamps: FloatArray, values: FloatArray) -> Scores:
        self._check_fitted()
        return stream_scores(self, timestamps, values)
