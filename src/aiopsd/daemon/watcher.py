"""Prometheus watches: incremental polling, streaming detection, one finding per incident.

The first poll of a series reads ``lookback`` of history: points up to the stored
watermark (already seen by an earlier run) or the whole history on a first start
only warm the detector up; later points are scored. A failing query marks the
watch's source down and produces nothing: missing data is never an anomaly.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from aiopsd.config import PrometheusConfig, WatchConfig
from aiopsd.daemon.metrics import Metrics
from aiopsd.detectors.anomaly import AnomalyDetector, make_detector
from aiopsd.detectors.anomaly.incidents import Event, IncidentTracker
from aiopsd.detectors.anomaly.knobs import with_knobs
from aiopsd.errors import SourceError
from aiopsd.models import Finding, FindingKind, FindingStatus, Series, series_key, stable_id
from aiopsd.sources.prometheus import RangeSource
from aiopsd.store import StateStore

logger = logging.getLogger(__name__)

PLOT_POINTS = 240


@dataclass
class SeriesState:
    detector: AnomalyDetector
    tracker: IncidentTracker
    last_ts: float
    # (ts, value, score, yhat, lower, upper) for the status page's chart.
    recent: deque[tuple[float, float, float, float, float, float]] = field(
        default_factory=lambda: deque(maxlen=PLOT_POINTS))


class Watcher:
    """Polls one watch; owns the detectors of its series."""

    def __init__(self, watch: WatchConfig, prometheus: PrometheusConfig, source: RangeSource,
                 store: StateStore, metrics: Metrics) -> None:
        self.watch = watch
        self.prometheus = prometheus
        self.source = source
        self.store = store
        self.metrics = metrics
        self.series: dict[str, SeriesState] = {}
        self.cursor_name = f"prometheus:{watch.name}"

    def poll(self, now: float | None = None) -> list[Finding]:
        now = time.time() if now is None else now
        w = self.watch
        cursor = self.store.get_cursor(self.cursor_name) or {}
        watermark = float(cursor["watermark"]) if "watermark" in cursor else None
        end = math.floor(now / w.step) * w.step
        if not self.series:
            start = (watermark if watermark is not None else end) - w.lookback
        else:
            start = (watermark if watermark is not None else end) - self.prometheus.overlap
        started = time.monotonic()
        try:
            batch = self.source.query_range(w.name, w.query, start, end, w.step)
        except SourceError as exc:
            logger.warning("watch %s: %s", w.name, exc)
            self.store.set_source(w.name, "prometheus", up=False, now=_dt(now), error=str(exc))
            self.metrics.source_up.labels(w.name).set(0)
            return []
        finally:
            self.metrics.poll_duration.labels(w.name).observe(time.monotonic() - started)
        findings: list[Finding] = []
        newest = -math.inf
        for series in batch:
            findings.extend(self._feed(series, warm_until=watermark if watermark is not None else end))
            if series.timestamps:
                newest = max(newest, series.timestamps[-1])
        findings.extend(self._forget_vanished(now, {series_key(w.name, s.labels) for s in batch}))
        lag = now - newest if newest > -math.inf else None
        self.store.set_source(w.name, "prometheus", up=True, now=_dt(now), lag=lag)
        self.metrics.source_up.labels(w.name).set(1)
        if lag is not None:
            self.metrics.poll_lag.labels(w.name).set(lag)
        self.store.upsert_findings(findings)
        self.store.put_cursor(self.cursor_name, {"watermark": end})
        for f in findings:
            if f.details.get("event") == Event.OPENED:
                self.metrics.findings.labels(str(f.kind)).inc()
        return findings

    def _feed(self, series: Series, *, warm_until: float) -> list[Finding]:
        key = series_key(self.watch.name, series.labels)
        ts = np.asarray(series.timestamps, dtype=np.float64)
        vals = np.asarray(series.values, dtype=np.float64)
        state = self.series.get(key)
        if state is None:
            warm = ts <= warm_until
            detector = with_knobs(make_detector(self.watch.detector, **self.watch.detector_params),
                                  self.watch.knobs)
            detector.fit(ts[warm], vals[warm])
            state = SeriesState(detector, self._tracker_for(key),
                                last_ts=float(ts[warm][-1]) if warm.any() else -math.inf)
            # History the detector learnt from, unscored: the chart shows what "normal" looked like.
            nan = math.nan
            state.recent.extend((t, v, nan, nan, nan, nan) for t, v in
                                zip(ts[warm][-PLOT_POINTS // 4:].tolist(), vals[warm][-PLOT_POINTS // 4:].tolist(),
                                    strict=True))
            self.series[key] = state
        out: list[Finding] = []
        for t, v in zip(ts.tolist(), vals.tolist(), strict=True):
            if t <= state.last_ts:
                continue
            state.last_ts = t
            score = state.detector.update(t, v)
            state.recent.append((t, v, *score))
            self.metrics.scores.set(self.watch.name, series.labels, tuple(score))  # type: ignore[arg-type]
            event = state.tracker.observe(t, score.anomaly_score)
            if event is None:
                continue
            start = state.tracker.last_start
            assert start is not None
            out.append(self._finding(key, series.labels, state, event, t, v, score.anomaly_score,
                                     (score.yhat, score.yhat_lower, score.yhat_upper), start))
        return out

    def _forget_vanished(self, now: float, present: set[str]) -> list[Finding]:
        """Drop series absent for longer than stale_after; close their open incident as "no data".

        Their detectors would otherwise live forever as label sets churn (pods come
        and go). The incident is closed, not acted on: missing data is never evidence.
        """
        out: list[Finding] = []
        for key in [k for k in self.series if k not in present]:
            state = self.series[key]
            if now - state.last_ts <= self.prometheus.stale_after:
                continue
            del self.series[key]
            if state.tracker.open_since is None:
                continue
            for f in self.store.active_findings(kind=FindingKind.ANOMALY, source=self.watch.name):
                if f.details.get("series") == key:
                    out.append(f.model_copy(update={
                        "status": FindingStatus.RESOLVED, "last_seen": _dt(state.last_ts), "sightings": (),
                        "summary": f"{f.summary} — closed: no data since {_dt(state.last_ts):%H:%M:%S}Z",
                        "details": {**f.details, "event": "no_data"}}))
        return out

    def _tracker_for(self, key: str) -> IncidentTracker:
        """A fresh tracker, re-opened on the incident a previous run left firing (same finding id)."""
        tracker = IncidentTracker(self.watch.resolve_after)
        for f in self.store.active_findings(kind=FindingKind.ANOMALY, source=self.watch.name):
            if f.details.get("series") == key:
                tracker.open_since = tracker.last_start = f.starts_at.timestamp()
                tracker.peak = f.score
        return tracker

    def _finding(self, key: str, labels: dict[str, str], state: SeriesState, event: Event, t: float,
                 value: float, score: float, band: tuple[float, float, float],
                 start: float) -> Finding:
        yhat, lo, hi = band
        where = "inside" if lo <= value <= hi else "outside"
        band_text = "" if math.isnan(lo) else f" {where} expected {lo:.4g}..{hi:.4g}"
        summary = f"{self.watch.name}: value {value:.4g}{band_text} (score {score:.2f})"
        if event == Event.RESOLVED:
            summary = f"{self.watch.name}: back to normal, value {value:.4g}{band_text} (peak score " \
                      f"{state.tracker.peak:.2f})"
        points = [[round(p[0], 3), *(None if math.isnan(x) else round(x, 6) for x in p[1:])]
                  for p in state.recent]
        return Finding(
            id=stable_id("anomaly", key, start), kind=FindingKind.ANOMALY, source=self.watch.name,
            labels={**labels, "watch": self.watch.name},
            score=state.tracker.peak if event != Event.RESOLVED else 0.0,
            status=FindingStatus.RESOLVED if event == Event.RESOLVED else FindingStatus.FIRING,
            starts_at=_dt(start), last_seen=_dt(t), summary=summary,
            details={"event": str(event), "series": key, "value": value, "yhat": _num(yhat),
                     "yhat_lower": _num(lo), "yhat_upper": _num(hi), "detector": self.watch.detector,
                     "points_columns": ["ts", "value", "score", "yhat", "yhat_lower", "yhat_upper"],
                     "points": points},
            sightings=(t,) if event != Event.RESOLVED else ())


def _num(x: float) -> float | None:
    return None if math.isnan(x) else x


def _dt(x: float) -> datetime:
    return datetime.fromtimestamp(x, UTC)
