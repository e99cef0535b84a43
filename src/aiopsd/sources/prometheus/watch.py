"""Prometheus watches: incremental polling, streaming detection, one finding per incident.

The first poll of a series reads ``lookback`` of history: points up to the stored
watermark (already seen by an earlier run) or the whole history on a first start
only warm the detector up; later points are scored. A failing query is a
:class:`~aiopsd.errors.SourceError` (the runner marks the watch's source down) and
produces nothing: missing data is never an anomaly.

The watermark advances only once a poll's findings are stored (``Poll.commit``). A poll
that fails after its query (a detector raising, the store refusing the write) drops every
detector of the watch, so the next poll rebuilds them exactly as a restart does:
warm up to the stored watermark, score what came after. No point is skipped.

At most ``max_series`` series are tracked per watch; the excess is refused (not
scored), counted on ``aiopsd_watch_series_refused`` and shown in the watch's
cursor on the status API. A series absent from ``resolve_after`` polls loses its
exported score gauges; after ``stale_after`` its detector is dropped too.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from aiopsd.config import PrometheusConfig, Settings, WatchConfig
from aiopsd.config.sections import SHARDS_PLACEHOLDER
from aiopsd.detectors.anomaly import AnomalyDetector, make_detector
from aiopsd.detectors.anomaly.incidents import Event, IncidentTracker
from aiopsd.detectors.anomaly.knobs import with_knobs
from aiopsd.models import Finding, FindingKind, FindingStatus, Series, SourceKind, series_key, stable_id
from aiopsd.sources.base import Poll, SourceEnv, SourceMetrics, SourceSpec, SourceStore
from aiopsd.sources.prometheus.client import PrometheusClient, RangeClient

logger = logging.getLogger(__name__)

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
    recent: Recent = field(default_factory=Recent)
    absent_polls: int = 0


class PrometheusWatch:
    """One watch (a :class:`~aiopsd.sources.base.Source`); owns the detectors of its series."""

    kind = SourceKind.PROMETHEUS
    leader_only = True

    def __init__(
        self,
        watch: WatchConfig,
        prometheus: PrometheusConfig,
        client: RangeClient,
        store: SourceStore,
        metrics: SourceMetrics,
    ) -> None:
        self.watch = watch
        self.prometheus = prometheus
        self.client = client
        self.store = store
        self.metrics = metrics
        self.series: dict[str, SeriesState] = {}
        self.cursor_name = f"{SourceKind.PROMETHEUS}:{watch.name}"
        self._refused = 0
        self._active: dict[str, Finding] | None = None

    @property
    def name(self) -> str:
        return self.watch.name

    @property
    def interval(self) -> float:
        return self.watch.interval

    def close(self) -> None:
        self.metrics.scores.forget(self.watch.name)

    def poll(self, now: float) -> Poll:
        w = self.watch
        cursor = self.store.get_cursor(self.cursor_name) or {}
        watermark = float(cursor["watermark"]) if "watermark" in cursor else None
        end = math.floor(now / w.step) * w.step
        if not self.series:
            start = (watermark if watermark is not None else end) - w.lookback
        else:
            start = (watermark if watermark is not None else end) - self.prometheus.overlap
        batch = self.client.query_range(w.name, w.query, start, end, w.step)  # SourceError: source down
        try:
            findings, newest = self._judge(batch, now, warm_until=watermark if watermark is not None else end)
        except Exception:
            self._rollback()
            raise
        value = {"watermark": end, "series": len(self.series), "refused_series": self._refused}
        return Poll(
            findings=findings,
            lag=now - newest if newest > -math.inf else None,
            commit=lambda: self.store.put_cursor(self.cursor_name, value),
            rollback=self._rollback,
        )

    def _rollback(self) -> None:
        """Back to what is stored: the next poll re-warms up to the stored watermark and scores
        everything after it again (as after a restart), so nothing is skipped."""
        self.series.clear()

    def _judge(self, batch: list[Series], now: float, *, warm_until: float) -> tuple[list[Finding], float]:
        w = self.watch
        findings: list[Finding] = []
        newest = -math.inf
        present: set[str] = set()
        keyed = sorted(((series_key(w.name, s.labels), s) for s in batch), key=lambda ks: ks[0])
        fresh = [k for k, _ in keyed if k not in self.series]
        room = max(0, w.max_series - len(self.series))
        refused = set(fresh[room:])
        self._active = None
        for key, series in keyed:
            if key in refused:
                continue
            present.add(key)
            findings.extend(self._feed(key, series, warm_until=self._warm_until(key, series, warm_until)))
            if series.timestamps:
                newest = max(newest, series.timestamps[-1])
        self._count_refused(len(refused))
        findings.extend(self._forget_vanished(now, present))
        self.metrics.watch_series.labels(w.name).set(len(self.series))
        return findings, newest

    def _warm_until(self, key: str, series: Series, default: float) -> float:
        """Where a new series' warm-up ends (the sharding hook: ``ShardedWatch`` uses its shard's watermark)."""
        return default

    def _count_refused(self, refused: int) -> None:
        if refused and refused != self._refused:
            logger.warning(
                "watch %s: %d series beyond max_series %d are not watched",
                self.watch.name,
                refused,
                self.watch.max_series,
            )
        self._refused = refused
        self.metrics.series_refused.labels(self.watch.name).set(refused)

    def _feed(self, key: str, series: Series, *, warm_until: float) -> list[Finding]:
        ts = np.asarray(series.timestamps, dtype=np.float64)
        vals = np.asarray(series.values, dtype=np.float64)
        state = self.series.get(key)
        if state is None:
            warm = ts <= warm_until
            detector = with_knobs(make_detector(self.watch.detector, **self.watch.detector_params), self.watch.knobs)
            detector.fit(ts[warm], vals[warm])
            state = SeriesState(
                detector,
                self._tracker_for(key),
                last_ts=float(ts[warm][-1]) if warm.any() else -math.inf,
                labels=series.labels,
            )
            # History the detector learnt from, unscored: the chart shows what "normal" looked like.
            nan = math.nan
            for t, v in zip(
                ts[warm][-PLOT_POINTS // 4 :].tolist(), vals[warm][-PLOT_POINTS // 4 :].tolist(), strict=True
            ):
                state.recent.append((t, v, nan, nan, nan, nan))
            self.series[key] = state
        state.absent_polls = 0
        out: list[Finding] = []
        latest = None
        for t, v in zip(ts.tolist(), vals.tolist(), strict=True):
            if t <= state.last_ts:
                continue
            state.last_ts = t
            score = state.detector.update(t, v)
            state.recent.append((t, v, *score))
            latest = score
            event = state.tracker.observe(t, score.anomaly_score)
            if event is None:
                continue
            start = state.tracker.last_start
            assert start is not None
            out.append(
                self._finding(
                    key,
                    series.labels,
                    state,
                    event,
                    t,
                    v,
                    score.anomaly_score,
                    (score.yhat, score.yhat_lower, score.yhat_upper),
                    start,
                )
            )
        if latest is not None:
            self.metrics.scores.set(self.watch.name, series.labels, tuple(latest))  # type: ignore[arg-type]
        return out

    def _forget_vanished(self, now: float, present: set[str]) -> list[Finding]:
        """Series missing from this poll: after ``resolve_after`` polls their exported gauges go; after
        ``stale_after`` their detector goes too and their open incident is closed as "no data".

        Detectors would otherwise live forever as label sets churn (pods come and go). The
        incident is closed, not acted on: missing data is never evidence.
        """
        out: list[Finding] = []
        for key in [k for k in self.series if k not in present]:
            state = self.series[key]
            state.absent_polls += 1
            if state.absent_polls == self.watch.resolve_after:
                self.metrics.scores.drop(self.watch.name, state.labels)
            if now - state.last_ts <= self.prometheus.stale_after:
                continue
            del self.series[key]
            self.metrics.scores.drop(self.watch.name, state.labels)
            if state.tracker.open_since is None:
                continue
            f = self._active_findings().get(key)
            if f is not None:
                out.append(
                    f.model_copy(
                        update={
                            "status": FindingStatus.RESOLVED,
                            "resolution": "no_data",
                            "last_seen": _dt(state.last_ts),
                            "sightings": (),
                            "summary": f"{f.summary} — closed: no data since {_dt(state.last_ts):%H:%M:%S}Z",
                            "details": {**f.details, "event": "no_data"},
                        }
                    )
                )
        return out

    def _active_findings(self) -> dict[str, Finding]:
        """This watch's firing anomaly findings by series key, read once per poll (not once per series)."""
        if self._active is None:
            self._active = {
                str(f.details.get("series")): f
                for f in self.store.active_findings(kind=FindingKind.ANOMALY, source=self.watch.name)
            }
        return self._active

    def _tracker_for(self, key: str) -> IncidentTracker:
        """A fresh tracker, re-opened on the incident a previous run left firing (same finding id)."""
        tracker = IncidentTracker(self.watch.resolve_after)
        f = self._active_findings().get(key)
        if f is not None:
            tracker.open_since = tracker.last_start = f.starts_at.timestamp()
            tracker.peak = f.score
        return tracker

    def _finding(
        self,
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
        yhat, lo, hi = band
        where = "inside" if lo <= value <= hi else "outside"
        band_text = "" if math.isnan(lo) else f" {where} expected {lo:.4g}..{hi:.4g}"
        summary = f"{self.watch.name}: value {value:.4g}{band_text} (score {score:.2f})"
        if event == Event.RESOLVED:
            summary = (
                f"{self.watch.name}: back to normal, value {value:.4g}{band_text} (peak score {state.tracker.peak:.2f})"
            )
        points = [
            [round(p[0], 3), *(None if math.isnan(x) else round(x, 6) for x in p[1:])] for p in state.recent.rows()
        ]
        return Finding(
            id=stable_id("anomaly", key, start),
            kind=FindingKind.ANOMALY,
            source=self.watch.name,
            labels={**labels, "watch": self.watch.name},
            score=state.tracker.peak if event != Event.RESOLVED else 0.0,
            status=FindingStatus.RESOLVED if event == Event.RESOLVED else FindingStatus.FIRING,
            starts_at=_dt(start),
            last_seen=_dt(t),
            summary=summary,
            details={
                "event": str(event),
                "series": key,
                "value": value,
                "yhat": _num(yhat),
                "yhat_lower": _num(lo),
                "yhat_upper": _num(hi),
                "detector": self.watch.detector,
                "points_columns": ["ts", "value", "score", "yhat", "yhat_lower", "yhat_upper"],
                "points": points,
            },
            sightings=(t,) if event != Event.RESOLVED else (),
        )


def _num(x: float) -> float | None:
    return None if math.isnan(x) else x


def _dt(x: float) -> datetime:
    return datetime.fromtimestamp(x, UTC)


def plan(settings: Settings) -> list[SourceSpec]:
    """One source per configured watch, all querying one Prometheus client."""
    if not settings.watches:
        return []
    client = PrometheusClient(settings.prometheus)

    def build(w: WatchConfig, env: SourceEnv) -> PrometheusWatch:
        if env.shard_owner is None:  # one replica scores every shard: the shard selection selects all
            whole = w.model_copy(update={"query": w.query.replace(SHARDS_PLACEHOLDER, ".*")})
            return PrometheusWatch(whole, settings.prometheus, client, env.store, env.metrics)
        from aiopsd.sources.prometheus.sharded import ShardedWatch  # a subclass: imports this module

        return ShardedWatch(w, settings.prometheus, client, env.store, env.metrics, env.shard_owner)

    def spec(w: WatchConfig) -> SourceSpec:
        return SourceSpec(SourceKind.PROMETHEUS, w.name, w, lambda env: build(w, env))

    return [spec(w) for w in settings.watches]
