"""``default``: two complementary views of a series, one report per anomaly.

* The *forecast view* (:class:`~aiopsd.detectors.anomaly.seasonal.SeasonalDetector`,
  ``decompose`` with level tracking and the flat-line view): how far the value
  is from the seasonal forecast, in robust residual units, against the series'
  own calibrated bar. It sees level, seasonality and flat-lines, and gives the band.
* The *context view* (:class:`~aiopsd.detectors.anomaly.context.ContextDetector`):
  how unexpected the recent sequence of quantised values is against the
  contexts the series has shown before (the idea of CAD OSE). It sees shapes and
  transitions that stay inside the band: a value that is normal on its own but
  never followed the previous ones.

``anomaly_score`` is the larger of the two views. After a point reaches 1, every
score is capped below 1 for ``rest`` points (the first ``confirm`` points of the
report excepted), whichever view fired: one report per anomaly, as NAB rewards
and as an on-call person wants. Parameters were chosen by leave-one-group-out
cross-validation (bench/anomaly.py, docs/anomaly.md).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from aiopsd.detectors.anomaly.base import Constraint, DetectorBase, FloatArray, Interval, Score
from aiopsd.detectors.anomaly.calibrate import BELOW_ONE
from aiopsd.detectors.anomaly.context import ContextDetector
from aiopsd.detectors.anomaly.seasonal import SeasonalDetector, Transform

_FORECAST = (
    "history",
    "refit_every",
    "min_z",
    "margin",
    "cooldown",
    "period",
    "min_history",
    "level_alpha",
    "flat_after",
    "transform",
)
_NAN = Score(math.nan)
_new_score = tuple.__new__  # Score(...) without the NamedTuple's Python-level __new__
_CONTEXT = ("levels", "order", "table_bits", "forget", "threshold", "warmup")


class EnsembleDetector(DetectorBase):
    """The larger of the forecast view and the context view, with one shared rest period."""

    _fitted_attr = "forecast_"
    _parameter_constraints: ClassVar[dict[str, Constraint]] = {
        **{k: SeasonalDetector._parameter_constraints[k] for k in _FORECAST},
        **{k: ContextDetector._parameter_constraints[k] for k in _CONTEXT},
        "rest": Interval(int, 0),
        "confirm": Interval(int, 1),
    }

    def __init__(
        self,
        *,
        history: int = 1024,
        refit_every: int = 512,
        min_z: float = 4.0,
        margin: float = 1.5,
        cooldown: int = 100,
        period: int = 0,
        min_history: int = 48,
        level_alpha: float = 0.005,
        flat_after: int = 12,
        transform: Transform = "counts",
        levels: int = 8,
        order: int = 0,
        table_bits: int = 10,
        forget: int = 2000,
        threshold: float = 0.5,
        warmup: int = 300,
        rest: int = 100,
        confirm: int = 2,
    ) -> None:
        self.history = history
        self.refit_every = refit_every
        self.min_z = min_z
        self.margin = margin
        self.cooldown = cooldown
        self.period = period
        self.min_history = min_history
        self.level_alpha = level_alpha
        self.flat_after = flat_after
        self.transform = transform
        self.levels = levels
        self.order = order
        self.table_bits = table_bits
        self.forget = forget
        self.threshold = threshold
        self.warmup = warmup
        self.rest = rest
        self.confirm = confirm

    def get_tags(self) -> dict[str, Any]:
        return {**super().get_tags(), "memory_bound": 22_000}

    def _fit(self, timestamps: FloatArray, values: FloatArray) -> None:
        params = self.get_params()
        self.forecast_ = SeasonalDetector(method="decompose", confirm=self.confirm, **{k: params[k] for k in _FORECAST})
        self.forecast_.fit(timestamps, values)
        self.context_ = ContextDetector(rest=self.rest, **{k: params[k] for k in _CONTEXT})
        self.context_.fit(timestamps, values)
        self.since_report_ = self.rest  # points since the last report
        self.run_ = 0  # points of the current report so far (confirming points)

    def update(self, timestamp: float, value: float) -> Score:
        # DetectorBase.update with the views' _update called directly (one call less per point).
        if value - value != 0.0:  # NaN or infinite (also before fit: the check below then raises)
            self._check_fitted()
            return _NAN
        try:
            forecast = self.forecast_._update(timestamp, value)
        except AttributeError:
            self._check_fitted()
            raise
        return self._combine(forecast, self.context_._score(value))

    def _update(self, timestamp: float, value: float) -> Score:
        return self._combine(self.forecast_._update(timestamp, value), self.context_._score(value))

    def _combine(self, forecast: Score, context: float) -> Score:
        """The larger of the views' scores, capped below 1 for ``rest`` points after a report."""
        anomaly = forecast[0]
        anomaly = max(anomaly, context)
        since = self.since_report_ + 1
        self.since_report_ = since
        if anomaly >= 1.0:
            if since > self.rest:
                self.since_report_, self.run_ = 0, 1
            elif 0 < self.run_ < self.confirm and since == self.run_:
                self.run_ += 1  # a confirming point of the report that just began
            else:
                anomaly = BELOW_ONE
        if anomaly == forecast[0]:
            return forecast
        return _new_score(Score, (anomaly, forecast[1], forecast[2], forecast[3]))
