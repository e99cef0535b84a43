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

import gc
import logging
import math

from aiopsd.config import PrometheusConfig, Settings, WatchConfig
from aiopsd.config.sections import SHARDS_PLACEHOLDER
from aiopsd.detectors.anomaly import make_detector
from aiopsd.detectors.anomaly.incidents import IncidentTracker
from aiopsd.detectors.anomaly.knobs import with_knobs
from aiopsd.models import Finding, FindingKind, FindingStatus, SourceKind, series_key
from aiopsd.sources.base import Poll, ScorePoint, ScorePush, SourceEnv, SourceMetrics, SourceSpec, SourceStore
from aiopsd.sources.prometheus.client import PrometheusClient, RangeClient, read_range
from aiopsd.sources.prometheus.matrix import Matrix, labels_of
from aiopsd.sources.prometheus.series import PLOT_POINTS, SeriesState, anomaly_finding, utc

logger = logging.getLogger(__name__)


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
        push: ScorePush | None = None,
    ) -> None:
        self.watch = watch
        self.prometheus = prometheus
        self.client = client
        self.store = store
        self.metrics = metrics
        self.series: dict[str, SeriesState] = {}
        self.cursor_name = f"{SourceKind.PROMETHEUS}:{watch.name}"
        self._keys: dict[bytes, str] = {}  # raw JSON labels -> series key, so a poll decodes new series only
        self._refused = 0
        self._active: dict[str, Finding] | None = None
        # export.scores: every series on /metrics, or only those with an open incident there and
        # (remote_write) every scored point pushed once the poll is committed.
        self._all_on_metrics = watch.export.scores == "metrics"
        self.push = push if watch.export.scores == "remote_write" else None
        self._outbox: list[ScorePoint] = []

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
        matrix = self._read(end, watermark)  # SourceError: source down
        outbox: list[ScorePoint] = []
        self._outbox = outbox
        before = len(self.series)
        try:
            findings, newest = self._judge(matrix, now, warm_until=watermark if watermark is not None else end)
        except Exception:
            self._rollback()
            raise
        self._freeze_if_grown(before)
        value = {"watermark": end, "series": len(self.series), "refused_series": self._refused}

        def commit() -> None:
            self.store.put_cursor(self.cursor_name, value)
            if self.push is not None:
                self.push.push(w.name, outbox)

        return Poll(
            findings=findings,
            lag=now - newest if newest > -math.inf else None,
            commit=commit,
            rollback=self._rollback,
        )

    def _read(self, end: float, watermark: float | None) -> Matrix:
        """What this poll must see, and no more.

        Warm-up (no detectors yet): ``lookback`` before the watermark, in chunks sized from a
        one-point probe of how many series the query returns. Later polls: from just after the
        oldest newest point of the tracked series (points at or before a series' newest point
        are never scored again), but never before ``watermark - overlap`` (what was always read).
        Every read stays on the ``step`` grid of ``end``, so timestamps match across polls.
        """
        w, p = self.watch, self.prometheus
        since = watermark if watermark is not None else end
        if not self.series:
            start = _on_grid(since - w.lookback, w.step)
            probe = self.client.query_range(w.name, w.query, end, end, w.step)
            expect = len(probe)
        else:
            oldest = min(s.last_ts for s in self.series.values())
            start = _on_grid(max(since - p.overlap, oldest + w.step), w.step)
            expect = len(self.series)
        start = min(start, end)
        return read_range(
            self.client, w.name, w.query, start, end, w.step, series=expect, max_samples=p.max_samples_per_query
        )

    def _freeze_if_grown(self, before: int) -> None:
        if len(self.series) > before + 1000:
            # A warm-up built many long-lived detectors: move them out of the cyclic GC's sight.
            # Each full collection would otherwise walk every detector's containers again (48 % of
            # the poll thread at 20k series after 12 minutes, issue 16). They are still freed by
            # reference counting when their series go.
            gc.freeze()

    def _rollback(self) -> None:
        """Back to what is stored: the next poll re-warms up to the stored watermark and scores
        everything after it again (as after a restart), so nothing is skipped."""
        self.series.clear()
        self._keys.clear()

    def _judge(self, matrix: Matrix, now: float, *, warm_until: float) -> tuple[list[Finding], float]:
        w = self.watch
        findings: list[Finding] = []
        newest = -math.inf  # the newest point scored by this poll
        present: set[str] = set()
        raws = matrix.metric_raw
        keys: list[str | None] = [None] * len(raws)
        fresh: list[tuple[str, int]] = []
        for i, raw in enumerate(raws):
            key = self._keys.get(raw)
            if key is None or key not in self.series:
                key = series_key(w.name, labels_of(raw))
                if key not in self.series:
                    fresh.append((key, i))
                    continue
                self._keys[raw] = key
            keys[i] = key
        fresh.sort()
        room = max(0, w.max_series - len(self.series))
        for key, i in fresh[:room]:
            keys[i] = key
            self._keys[raws[i]] = key
        refused = len(fresh) - min(room, len(fresh))
        self._active = None
        offsets = matrix.offsets.tolist()
        stamps = matrix.timestamps.tolist()
        values = matrix.values.tolist()
        for i, key in enumerate(keys):
            if key is None:
                continue
            present.add(key)
            lo, hi = offsets[i], offsets[i + 1]
            until = self._warm_until(key, raws[i], warm_until)
            state = self.series.get(key)
            if state is None:
                state = self._new_state(key, raws[i], matrix, lo, hi, until)
            state.absent_polls = 0
            found, scored = self._feed(key, state, stamps[lo:hi], values[lo:hi])
            findings.extend(found)
            newest = max(newest, scored)
        self._count_refused(refused)
        findings.extend(self._forget_vanished(now, present))
        self.metrics.watch_series.labels(w.name).set(len(self.series))
        return findings, newest

    def _warm_until(self, key: str, raw: bytes, default: float) -> float:
        """Called for every series a poll feeds: where its warm-up ends if it is new (its points up to
        there fit the detector, unscored). The sharding hook: ``ShardedWatch`` answers its shard's
        watermark (and counts the series in its shard)."""
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

    def _new_state(self, key: str, raw: bytes, matrix: Matrix, lo: int, hi: int, warm_until: float) -> SeriesState:
        """A detector fitted on the series' points up to ``warm_until`` (already seen: never scored)."""
        ts, vals = matrix.timestamps[lo:hi], matrix.values[lo:hi]
        warm = ts <= warm_until
        detector = with_knobs(make_detector(self.watch.detector, **self.watch.detector_params), self.watch.knobs)
        detector.fit(ts[warm], vals[warm])
        state = SeriesState(
            detector,
            self._tracker_for(key),
            last_ts=float(ts[warm][-1]) if warm.any() else -math.inf,
            labels=labels_of(raw),
            raw=raw,
        )
        # History the detector learnt from, unscored: the chart shows what "normal" looked like.
        nan = math.nan
        for t, v in zip(ts[warm][-PLOT_POINTS // 4 :].tolist(), vals[warm][-PLOT_POINTS // 4 :].tolist(), strict=True):
            state.recent.append((t, v, nan, nan, nan, nan))
        self.series[key] = state
        return state

    def _feed(
        self, key: str, state: SeriesState, stamps: list[float], values: list[float]
    ) -> tuple[list[Finding], float]:
        """Score the points after the series' newest; the findings and the newest point scored."""
        out: list[Finding] = []
        latest = None
        for t, v in zip(stamps, values, strict=True):
            if t <= state.last_ts:
                continue
            state.last_ts = t
            score = state.detector.update(t, v)
            state.recent.append((t, v, *score))
            self.metrics.scores.record_point(key, t, score.anomaly_score)
            latest = score
            if self.push is not None:
                self._outbox.append((key, state.labels, t, score))
            event = state.tracker.observe(t, score.anomaly_score)
            if event is None:
                continue
            start = state.tracker.last_start
            assert start is not None
            out.append(
                anomaly_finding(
                    self.watch,
                    key,
                    state.labels,
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
            if self._all_on_metrics or state.tracker.open_since is not None:
                self.metrics.scores.set(self.watch.name, state.labels, tuple(latest))  # type: ignore[arg-type]
                state.exported = True
            elif state.exported:
                self.metrics.scores.drop(self.watch.name, state.labels)
                state.exported = False
            return out, state.last_ts
        return out, -math.inf

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
            if state.absent_polls == self.watch.resolve_after and state.exported:
                self.metrics.scores.drop(self.watch.name, state.labels)
                state.exported = False
            if now - state.last_ts <= self.prometheus.stale_after:
                continue
            del self.series[key]
            self._keys.pop(state.raw, None)
            if state.exported:
                self.metrics.scores.drop(self.watch.name, state.labels)
            if self.push is not None:
                self.push.forget(self.watch.name, key)
            if state.tracker.open_since is None:
                continue
            f = self._active_findings().get(key)
            if f is not None:
                out.append(
                    f.model_copy(
                        update={
                            "status": FindingStatus.RESOLVED,
                            "resolution": "no_data",
                            "last_seen": utc(state.last_ts),
                            "sightings": (),
                            "summary": f"{f.summary} — closed: no data since {utc(state.last_ts):%H:%M:%S}Z",
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


def _on_grid(t: float, step: float) -> float:
    """The first multiple of ``step`` at or after ``t`` (where Prometheus evaluates a read that ends on the grid)."""
    return math.ceil(t / step - 1e-9) * step


def plan(settings: Settings) -> list[SourceSpec]:
    """One source per configured watch, all querying one Prometheus client."""
    if not settings.watches:
        return []
    client = PrometheusClient(settings.prometheus)

    def build(w: WatchConfig, env: SourceEnv) -> PrometheusWatch:
        if env.shard_owner is None:  # one replica scores every shard: the shard selection selects all
            whole = w.model_copy(update={"query": w.query.replace(SHARDS_PLACEHOLDER, ".*")})
            return PrometheusWatch(whole, settings.prometheus, client, env.store, env.metrics, env.push)
        from aiopsd.sources.prometheus.sharded import ShardedWatch  # a subclass: imports this module

        return ShardedWatch(w, settings.prometheus, client, env.store, env.metrics, env.shard_owner, env.push)

    def spec(w: WatchConfig) -> SourceSpec:
        return SourceSpec(SourceKind.PROMETHEUS, w.name, w, lambda env: build(w, env))

    return [spec(w) for w in settings.watches]
