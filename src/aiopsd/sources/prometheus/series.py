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


class Recent:
    """The last PLOT_POINTS (ts, value, score, yhat, lower, upper) rows for the status page's chart.

    One preallocated float64 ring (11.5 kB a series), so memory per series is flat from the
    first poll instead of growing toward its cap as Python tuples (about 56 kB at the cap).
    """

    __slots__ = ("_len", "_next", "_rows")

    def __init__(self) -> None:
        self._rows = np.full((PLOT_POINTS, 6), np.nan)
        self._next = 0
        self._len = 0

    def append(self, row: tuple[float, ...]) -> None:
        self._rows[self._next] = row
        self._next = (self._next + 1) % PLOT_POINTS
        self._len = min(self._len + 1, PLOT_POINTS)

    def rows(self) -> list[list[float]]:
        order = np.roll(self._rows, -self._next, axis=0)[PLOT_POINTS - self._len :]
        return order.tolist()  # type: ignore[no-any-return]


@dataclass
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
