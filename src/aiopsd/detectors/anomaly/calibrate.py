"""Turn a raw deviation (in robust standard deviations) into ``anomaly_score`` (>= 1 anomalous).

Shared by every detector so one threshold means the same thing everywhere:

* *Self-calibrating bar.* ``anomaly = raw / max(min_z, margin * q)`` where
  ``q`` is the ``bar_quantile`` quantile of the raw scores of the last
  ``window`` points. A series that is always spiky raises its own bar; a
  quiet one alerts on its first real excursion. This is what lets one
  default work across series without per-series tuning.
* *One alert per incident.* An excursion reports its first ``confirm``
  consecutive points (default 2, so a rule can tell a lone outlier from a
  sustained excursion); after that, scores are capped below 1 and damped
  for ``cooldown`` points (linearly back to full strength), so an incident
  is reported once rather than once per sample. An alerting point enters
  the bar's history at the bar's height (not the outlier's), so outliers
  that keep coming raise the bar step by step until they no longer alert,
  without one huge value blinding the detector for a whole window.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiopsd.detectors.anomaly._window import SortedWindow

BELOW_ONE = 0.999
MAX_Z = 1e4


@dataclass
class Calibrator:
    """Streaming raw-to-anomaly calibration; pure Python, bounded by ``window`` floats."""

    window: int = 640
    min_z: float = 4.0
    margin: float = 1.5
    bar_quantile: float = 0.995
    cooldown: int = 100
    confirm: int = 2
    history: SortedWindow = field(init=False)
    since_alert: int = field(init=False)
    run: int = field(init=False)

    def __post_init__(self) -> None:
        self.history = SortedWindow(self.window, "f")  # raw scores: float32 is plenty
        self.since_alert = self.cooldown
        self.run = 0

    def bar(self) -> float:
        """The raw score that would make ``anomaly_score`` 1 now (outside a cooldown)."""
        recent = self.history.quantile(self.bar_quantile) if len(self.history) else 0.0
        return max(self.min_z, self.margin * recent)

    def __call__(self, raw: float) -> float:
        return self.step(raw, self.bar())

    def step(self, raw: float, bar: float) -> float:
        """``__call__`` with the current :meth:`bar` already computed (the hot path asks for it once)."""
        raw = min(raw, MAX_Z)
        anomaly = raw / bar
        if 0 < self.run < self.confirm and anomaly >= 1.0:
            self.run += 1  # the incident goes on: report a few confirming points
        elif self.since_alert < self.cooldown:
            anomaly = min(anomaly, BELOW_ONE) * self.since_alert / self.cooldown
            self.run = 0
        else:
            self.run = 1 if anomaly >= 1.0 else 0
        self.since_alert += 1
        if anomaly >= 1.0:
            self.since_alert = 0
            self.history.push(bar)
        else:
            self.history.push(raw)
        return anomaly

    def skip(self) -> None:
        """A point that could not be scored (warm-up) still counts toward the cooldown."""
        self.since_alert += 1
