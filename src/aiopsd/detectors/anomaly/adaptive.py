"""Adaptive robust detector: rank statistics, a self-calibrating threshold and one alert per incident.

Per point, in pure Python (no numpy in the hot path):

1. *Features.* A robust z-score of the value against the trailing window
   (median, inter-quartile range), a robust z-score of the step from the
   previous value against the trailing steps, and, when a season is found, a
   robust z-score of the difference to the value one season earlier.
2. *Calibration* (:class:`~aiopsd.detectors.anomaly.calibrate.Calibrator`): the
   largest feature is divided by a bar that learns from the series' own recent
   raw scores, and an alert is followed by a cooldown (one alert per incident).

The band (``yhat``, ``yhat_lower``, ``yhat_upper``) is the trailing median,
or the seasonal prediction when a season is in use, plus or minus the
distance at which the level feature alone would score 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from aiopsd.detectors.anomaly._window import SortedWindow
from aiopsd.detectors.anomaly.base import DetectorBase, FloatArray, Interval, InvalidParameterError, Score
from aiopsd.detectors.anomaly.calibrate import Calibrator

_IQR_TO_SIGMA = 1.0 / 1.349
_MAD_TO_SIGMA = 1.4826


def _spread(window: SortedWindow, floor: float) -> float:
    """Robust standard deviation: IQR, else the 5-95% range, else the full range, else ``floor``."""
    for lo, hi, factor in ((0.25, 0.75, _IQR_TO_SIGMA), (0.05, 0.95, 1 / 3.29), (0.0, 1.0, 0.25)):
        s = (window.quantile(hi) - window.quantile(lo)) * factor
        if s > floor:
            return s
    return floor


def _spread_abs(window: SortedWindow, floor: float) -> float:
    """Robust scale of absolute values (steps): median, else 90th percentile, else max, else ``floor``."""
    for q, factor in ((0.5, _MAD_TO_SIGMA), (0.9, 1 / 1.645), (1.0, 0.25)):
        s = window.quantile(q) * factor
        if s > floor:
            return s
    return floor


def find_period(values: Iterable[float], min_lag: int = 4, min_acf: float = 0.6) -> int:
    """Dominant season (in points) by autocorrelation, or 0 if none is strong enough.

    The lag of the highest autocorrelation peak between ``min_lag`` and half
    the data; amortised cost: it runs once every quarter window.
    """
    x = np.fromiter(values, dtype=np.float64)
    n = x.size
    if n < 4 * min_lag:
        return 0
    x = x - x.mean()
    denom = float(x @ x)
    if denom <= 0:
        return 0
    spectrum = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[: n // 2] / denom
    acf = acf * n / (n - np.arange(n // 2))
    lags = np.arange(min_lag, n // 2 - 1)
    if lags.size == 0:
        return 0
    peaks = lags[(acf[lags] >= acf[lags - 1]) & (acf[lags] >= acf[lags + 1])]
    if peaks.size == 0:
        return 0
    best = int(peaks[np.argmax(acf[peaks])])
    return best if acf[best] >= min_acf else 0


class AdaptiveDetector(DetectorBase):
    """Robust z-scores of level and step, self-calibrating threshold, cooldown after an alert."""

    _fitted_attr = "levels_"
    _parameter_constraints = {
        "window": Interval(int, 8),
        "min_z": Interval(float, 0, closed="neither"),
        "margin": Interval(float, 0, closed="neither"),
        "cooldown": Interval(int, 0),
        "min_periods": Interval(int, 2),
        "season": Interval(int, 0),
        "bar_quantile": Interval(float, 0, 1),
    }

    def __init__(
        self,
        *,
        window: int = 640,
        min_z: float = 4.0,
        margin: float = 1.5,
        cooldown: int = 100,
        min_periods: int = 30,
        season: int = 0,
        bar_quantile: float = 0.995,
    ) -> None:
        self.window = window
        self.min_z = min_z
        self.margin = margin
        self.cooldown = cooldown
        self.min_periods = min_periods
        self.season = season
        self.bar_quantile = bar_quantile

    def _validate_together(self, params: Mapping[str, Any]) -> None:
        if params["season"] > params["window"]:
            raise InvalidParameterError("season", "season must be <= window (the season is looked up in it)")

    def _fit(self, timestamps: FloatArray, values: FloatArray) -> None:
        self.levels_ = SortedWindow(self.window)
        self.steps_ = SortedWindow(self.window)
        self.calibrator_ = Calibrator(self.window, self.min_z, self.margin, self.bar_quantile, self.cooldown)
        self.seasonal_ = SortedWindow(self.window // 2)
        self.period_ = self.season
        self.since_refit_ = 0
        self.prev_ = math.nan
        self.n_ = 0
        for t, v in zip(timestamps.tolist(), values.tolist(), strict=True):
            self.update(t, v)

    def _update(self, timestamp: float, value: float) -> Score:
        levels, steps = self.levels_, self.steps_
        prev = self.prev_
        has_step = not math.isnan(prev)
        step = abs(value - prev) if has_step else 0.0
        score = Score(0.0)
        if len(levels) >= self.min_periods:
            med = levels.quantile(0.5)
            floor = 1e-9 + 1e-3 * abs(med)
            s_level = _spread(levels, floor)
            z_level = abs(value - med) / s_level
            z_step = 0.0
            if has_step and len(steps):
                z_step = step / _spread_abs(steps, floor)
            raw = z_level if z_level > z_step else z_step
            period = self.period_
            if period and len(levels) >= period:
                gap = abs(value - levels.order.ago(period))
                if len(self.seasonal_) >= self.min_periods:
                    z_season = gap / _spread_abs(self.seasonal_, floor)
                    raw = z_level if z_level > z_season else z_season
                self.seasonal_.push(gap)
            bar = self.calibrator_.bar()
            anomaly = self.calibrator_(raw)
            width = bar * s_level
            score = Score(anomaly, med, med - width, med + width)
        else:
            self.calibrator_.skip()
        levels.push(value)
        if has_step:
            steps.push(step)
        self.prev_ = value
        self.n_ += 1
        self.since_refit_ += 1
        if not self.season and self.since_refit_ >= self.window // 4 and len(levels) >= self.window // 2:
            self.since_refit_ = 0
            period = find_period(levels.order.tolist())
            if period != self.period_:
                self.period_ = period
                self.seasonal_ = SortedWindow(self.window // 2)
        return score
