"""The operator's noise knobs of a watch, applied on top of any detector (pure, no I/O).

* ``direction``: ``up`` alerts only when the value is above the detector's
  expected value ``yhat``, ``down`` only below it, ``both`` either way.
* ``min_deviation``: an absolute floor; ``|value - yhat|`` below it never alerts.
* ``min_relative_deviation``: the same relative to ``|yhat|`` (0.1: within 10 %
  of the expected value never alerts).
* ``warmup`` (seconds): nothing alerts until this long after the first point
  the detector saw for the series (its ``fit`` history included).

A point a knob holds back keeps its score, capped just below 1
(:data:`~aiopsd.detectors.anomaly.calibrate.BELOW_ONE`), so charts and the
exported score still show how unusual it was; only the alert is withheld.
When the detector gives no ``yhat`` (``iforest``), ``direction`` and the
deviation floors cannot be judged: such points are held back too (no action
on missing evidence), which ``aiopsd check`` refuses up front
(:func:`knob_problem`). The detector's own cooldown is not told about held-back
points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Self

import numpy as np

from aiopsd.detectors.anomaly.base import AnomalyDetector, FloatArray, Score, Scores, stream_scores
from aiopsd.detectors.anomaly.calibrate import BELOW_ONE

Direction = Literal["up", "down", "both"]


@dataclass(frozen=True)
class Knobs:
    direction: Direction = "both"
    min_deviation: float = 0.0
    min_relative_deviation: float = 0.0
    warmup: float = 0.0

    @property
    def active(self) -> bool:
        return self.direction != "both" or self.min_deviation > 0 or self.min_relative_deviation > 0 or self.warmup > 0

    @property
    def needs_band(self) -> bool:
        return self.direction != "both" or self.min_deviation > 0 or self.min_relative_deviation > 0

    def allows(self, value: float, yhat: float) -> bool:
        """Whether a point at ``value`` with expected value ``yhat`` may alert (warm-up aside)."""
        if not self.needs_band:
            return True
        if math.isnan(yhat):
            return False
        diff = value - yhat
        if (self.direction == "up" and diff <= 0) or (self.direction == "down" and diff >= 0):
            return False
        dev = abs(diff)
        return dev >= self.min_deviation and dev >= self.min_relative_deviation * abs(yhat)


class KnobbedDetector:
    """A detector whose alerts pass through the watch's :class:`Knobs`; otherwise the detector itself."""

    def __init__(self, detector: AnomalyDetector, knobs: Knobs) -> None:
        self.detector = detector
        self.knobs = knobs
        self.first_ts_ = math.nan

    def get_params(self) -> dict[str, Any]:
        return self.detector.get_params()

    def fit(self, timestamps: FloatArray, values: FloatArray) -> Self:
        self.detector.fit(timestamps, values)
        ts = np.asarray(timestamps, dtype=np.float64)
        self.first_ts_ = float(ts[0]) if ts.size else math.nan
        return self

    def update(self, timestamp: float, value: float) -> Score:
        score = self.detector.update(timestamp, value)
        if math.isnan(self.first_ts_):
            self.first_ts_ = timestamp
        if score.anomaly_score < 1.0:  # also NaN
            return score
        warming = timestamp - self.first_ts_ < self.knobs.warmup
        if warming or not self.knobs.allows(value, score.yhat):
            return score._replace(anomaly_score=BELOW_ONE)
        return score

    def score(self, timestamps: FloatArray, values: FloatArray) -> Scores:
        return stream_scores(self, timestamps, values)


def with_knobs(detector: AnomalyDetector, knobs: Knobs) -> AnomalyDetector:
    """``detector`` itself when no knob is set, else wrapped so the knobs hold back alerts."""
    return KnobbedDetector(detector, knobs) if knobs.active else detector


def knob_problem(detector: AnomalyDetector, knobs: Knobs) -> str | None:
    """Why these knobs cannot work with this detector, or ``None``."""
    if not knobs.needs_band:
        return None
    t = np.arange(64, dtype=np.float64)
    probe = detector.fit(t, np.sin(t / 4.0) + 10.0).update(64.0, 10.0)
    if math.isnan(probe.yhat):
        return (
            f"{type(detector).__name__} gives no expected value (yhat), so direction, min_deviation and "
            "min_relative_deviation cannot be applied; use another detector or drop them"
        )
    return None
