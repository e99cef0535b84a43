"""Robust rolling median / MAD detector: the simplest detector worth trusting.

Fast: the trailing window is kept sorted (:class:`SortedWindow`), so the median
is one index and the MAD -- the median of ``|x - median|`` -- is the k-th
smallest element of two implicitly sorted sequences (the distances below and
above the median), found by binary search in O(log window). No numpy per point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from aiopsd.detectors.anomaly._window import SortedWindow
from aiopsd.detectors.anomaly.base import DetectorBase, FloatArray, Interval, Score

_MAD_TO_SIGMA = 1.4826


def _kth_distance(s: Sequence[float], med: float, k: int) -> float:
    """k-th smallest (0-based) of ``|x - med|`` over the sorted list ``s``."""
    from bisect import bisect_left

    split = bisect_left(s, med)
    below = split  # below[i] = med - s[split - 1 - i], ascending
    above = len(s) - split  # above[j] = s[split + j] - med, ascending

    def a(i: int) -> float:
        return med - s[split - 1 - i] if i < below else math.inf

    def b(j: int) -> float:
        return s[split + j] - med if j < above else math.inf

    # Take i from "below" and k + 1 - i from "above" so that max of the two lasts is minimal.
    lo, hi = max(0, k + 1 - above), min(k + 1, below)
    while lo < hi:
        i = (lo + hi) // 2
        j = k + 1 - i
        if j > 0 and i < below and b(j - 1) > a(i):
            lo = i + 1
        else:
            hi = i
    i = lo
    j = k + 1 - i
    return max(a(i - 1) if i > 0 else -math.inf, b(j - 1) if j > 0 else -math.inf)


class MADDetector(DetectorBase):
    """Score = robust z-score of a point against the trailing ``window`` points / ``threshold``.

    The median and the median absolute deviation of the last ``window`` finite
    values (the point itself excluded) give the expected value and band; a
    point ``threshold`` robust standard deviations away scores 1.0. No
    calibration and no cooldown: this is the textbook baseline the others are
    measured against.
    """

    _parameter_constraints = {
        "window": Interval(int, 2),
        "threshold": Interval(float, 0, closed="neither"),
        "min_periods": Interval(int, 1),
        "min_scale": Interval(float, 0),
    }

    def __init__(
        self, *, window: int = 288, threshold: float = 3.5, min_periods: int = 12, min_scale: float = 1e-9
    ) -> None:
        self.window = window
        self.threshold = threshold
        self.min_periods = min_periods
        self.min_scale = min_scale

    def _fit(self, timestamps: FloatArray, values: FloatArray) -> None:
        vals = values
        self.buffer_ = SortedWindow(self.window)
        for v in vals[np.isfinite(vals)][-self.window :].tolist():
            self.buffer_.push(v)

    def _update(self, timestamp: float, value: float) -> Score:
        buf = self.buffer_
        n = len(buf)
        score = Score(0.0)
        if n >= self.min_periods:
            s = buf.sorted
            med = s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])
            if n % 2:
                mad = _kth_distance(s, med, n // 2)
            else:
                mad = 0.5 * (_kth_distance(s, med, n // 2 - 1) + _kth_distance(s, med, n // 2))
            scale = max(_MAD_TO_SIGMA * mad, self.min_scale, 1e-6 * abs(med))
            width = self.threshold * scale
            score = Score(min(abs(value - med) / width, 1e9), med, med - width, med + width)
        buf.push(value)
        return score
