"""What a watch keeps per series (detector, incident, chart rows) and the finding an incident event makes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from aiopsd.config import WatchConfig
from aiopsd.detectors.anomaly import AnomalyDetector
from aiopsd.detectors.anomaly.incidents import Event, IncidentTracker
from aiopsd.models import Finding, FindingKind, FindingStatus, stable_id

PLOT_POINTS = 240


_REBASE = float(2**20)  # seconds: float32 time offsets stay within 1/8 s of the true time


class Recent:
    """The last PLOT_POINTS (ts, value, score, yhat, lower, upper) rows for the status page's chart.

    One preallocated float32 ring (5.8 kB a series; float64 took 11.5 kB, half of the 20 kB a
    series may cost). Times are float32 offsets from a float64 base, re-based once they pass
    2**20 s (12 days): whole-second times stay exact, others within 1/8 s. Values, scores and
    bands keep float32's 7 significant digits, which is what a chart shows; the finding's own
    value, score and band come from the detector, not from here.
    """

    __slots__ = ("_base", "_len", "_next", "_rows")

    def __init__(self) -> None:
        self._rows = np.full((PLOT_POINTS, 6), np.nan, dtype=np.float32)
        self._base = math.nan
        self._next = 0
        self._len = 0

    def append(self, row: tuple[float, ...]) -> None:
        t = row[0]
        if self._base != self._base:  # NaN: the first row
            self._base = t
        elif not -_REBASE < t - self._base < _REBASE:
            self._rows[:, 0] -= np.float32(t - self._base)
            self._base = t
        self._rows[self._next] = (t - self._base, *row[1:])
        self._next = (self._next + 1) % PLOT_POINTS
        self._len = min(self._len + 1, PLOT_POINTS)

    def rows(self) -> list[list[float]]:
        order = np.roll(self._rows, -self._next, axis=0)[PLOT_POINTS - self._len :].astype(np.float64)
        order[:, 0] += self._base
        return order.tolist()  # type: ignore[no-any-return]


@dataclass(slots=True)
class SeriesState:
    detector: AnomalyDetector
    tracker: IncidentTracker
    last_ts: float
    labels: dict[str, str]
    raw: bytes = b""
    """The series' labels as Prometheus wrote them (the watch's cache key for this series)."""
    recent: Recent = field(default_factory=Recent)
    absent_polls: int = 0
    exported: bool = False
    """Its latest score is on /metrics now."""


def anomaly_finding(
    watch: WatchConfig,
    key: str,
    labels: dict[str, str],
    state: SeriesState,
    event: Event,
    t: float,
    value: float,
    score: float,
    band: tuple[float, float, float],
    start: float,
) -> Finding:
    """The finding of one incident event of one series, with the series' recent points for the chart."""
    yhat, lo, hi = band
    where = "inside" if lo <= value <= hi else "outside"
    band_text = "" if math.isnan(lo) else f" {where} expected {lo:.4g}..{hi:.4g}"
    summary = f"{watch.name}: value {value:.4g}{band_text} (score {score:.2f})"
    if event == Event.RESOLVED:
        summary = f"{watch.name}: back to normal, value {value:.4g}{band_text} (peak score {state.tracker.peak:.2f})"
    points = [[round(p[0], 3), *(None if math.isnan(x) else round(x, 6) for x in p[1:])] for p in state.recent.rows()]
    return Finding(
        id=stable_id("anomaly", key, start),
        kind=FindingKind.ANOMALY,
        source=watch.name,
        labels={**labels, "watch": watch.name},
        score=state.tracker.peak if event != Event.RESOLVED else 0.0,
        status=FindingStatus.RESOLVED if event == Event.RESOLVED else FindingStatus.FIRING,
        starts_at=utc(start),
        last_seen=utc(t),
        summary=summary,
        details={
            "event": str(event),
            "series": key,
            "value": value,
            "yhat": _num(yhat),
            "yhat_lower": _num(lo),
            "yhat_upper": _num(hi),
            "detector": watch.detector,
            "points_columns": ["ts", "value", "score", "yhat", "yhat_lower", "yhat_upper"],
            "points": points,
        },
        sightings=(t,) if event != Event.RESOLVED else (),
    )


def _num(x: float) -> float | None:
    return None if math.isnan(x) else x


def utc(x: float) -> datetime:
    return datetime.fromtimestamp(x, UTC)
