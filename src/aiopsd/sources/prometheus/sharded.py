"""A Prometheus watch run by one replica of several: it scores only the series of the shards it holds.

Every replica polls every sharded watch (``leader_only`` is False) and keeps the series whose
shard (see :mod:`aiopsd.sources.prometheus.shards`) its lease keeper holds. Each shard has its
own stored watermark instead of the watch's cursor, so:

* a shard **gained** (taken over from a dead replica, or moved here by a rebalance) is warmed
  up from ``lookback`` before its watermark, and only the points after the watermark are scored:
  the new owner continues exactly where the last one stopped, and no finding comes from a cold
  detector;
* a shard **lost** drops its series' detector state and exported scores at once;
* the watermark commit is fenced by the lease (the keeper refuses a shard whose lease is no
  longer ours, or whose watermark moved under us); a refused shard is forgotten and re-warmed
  if it is ours again. Findings of a shard lost while the poll ran are dropped before they are
  stored: the new owner reports them.

The owner filter runs right after the fetch, before anything per series: a series' shard is
computed once from its raw labels (kept by those bytes for as long as the query returns them), and
the other shards' series are cut out of the parsed matrix with one numpy mask, so no detector
state, series key or Python float is made for them.

The decision loop stays with the leader (the dispatcher reads every replica's findings from the
shared store), so the engine's exactly-once guarantees are those of one replica.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from aiopsd.config import PrometheusConfig, WatchConfig
from aiopsd.sources.base import Poll, ScorePoint, ScorePush, SourceMetrics, SourceStore
from aiopsd.sources.prometheus.client import RangeClient, read_range
from aiopsd.sources.prometheus.matrix import Matrix, labels_of, select
from aiopsd.sources.prometheus.shards import ShardOwner, ShardPlan, plan_poll
from aiopsd.sources.prometheus.watch import PrometheusWatch, _on_grid

logger = logging.getLogger(__name__)


class ShardedWatch(PrometheusWatch):
    leader_only = False

    def __init__(
        self,
        watch: WatchConfig,
        prometheus: PrometheusConfig,
        client: RangeClient,
        store: SourceStore,
        metrics: SourceMetrics,
        owner: ShardOwner,
        push: ScorePush | None = None,
    ) -> None:
        super().__init__(watch, prometheus, client, store, metrics, push)
        self.owner = owner
        self._held: frozenset[int] = frozenset()  # the shards this watch scored in its last poll
        self._shard_keys: dict[str, int] = {}  # series key -> shard, for the series in self.series
        # Raw labels -> shard of every series the last read returned (all shards): a label set is
        # decoded and hashed once, not at every poll. Rebuilt at each read, so churn does not pile up.
        self._raw_shards: dict[bytes, int] = {}
        self._returned: int | None = None  # how many series (all shards) the last read returned
        self._plan: ShardPlan | None = None

    def poll(self, now: float) -> Poll:
        w = self.watch
        end = math.floor(now / w.step) * w.step
        plan = plan_poll(self.owner, w.name, self._held, end)
        self._drop_shards(plan.lost)
        if not plan.owned:
            self._held = frozenset()
            self.metrics.watch_series.labels(w.name).set(len(self.series))
            return Poll()
        matrix = self._owned_part(self._read_shards(plan, end), plan)  # SourceError: source down
        outbox: list[ScorePoint] = []
        self._outbox = outbox
        before = len(self.series)
        self._plan = plan
        try:
            findings, newest = self._judge(matrix, now, warm_until=end)
        except Exception:
            self._rollback()
            raise
        finally:
            self._plan = None
        self._freeze_if_grown(before)
        still = self.owner.owned()  # a shard lost meanwhile is the new owner's to report
        findings = [f for f in findings if self._shard_keys.get(str(f.details.get("series"))) in still]
        self._shard_keys = {k: s for k, s in self._shard_keys.items() if k in self.series}
        self._held = plan.owned
        return Poll(
            findings=findings,
            lag=now - newest if newest > -math.inf else None,
            commit=lambda: self._commit(plan, outbox, still),
            rollback=self._rollback,
        )

    def _read_shards(self, plan: ShardPlan, end: float) -> Matrix:
        """The plan's range (``lookback`` before the watermark of a gained shard, ``overlap`` before a
        kept one's), chunked like :meth:`PrometheusWatch._read`. With no shard gained it starts no
        earlier than just after the oldest newest point of the tracked series, as unsharded reads do."""
        w, p = self.watch, self.prometheus
        query = plan.query(w.query)
        start = plan.start(lookback=w.lookback, overlap=p.overlap)
        if plan.gained or not self.series or self._returned is None:
            expect = len(self.client.query_range(w.name, query, end, end, w.step))  # one-point probe
        else:
            start = max(start, min(s.last_ts for s in self.series.values()) + w.step)
            expect = self._returned
        start = min(_on_grid(start, w.step), end)
        matrix = read_range(
            self.client, w.name, query, start, end, w.step, series=expect, max_samples=p.max_samples_per_query
        )
        self._returned = len(matrix)
        return matrix

    def _owned_part(self, matrix: Matrix, plan: ShardPlan) -> Matrix:
        """Only the series of the shards held: PromQL cannot hash label sets, so unless the query
        selected the shards itself (``$__shards``), it returned every shard's series."""
        known, shards = self._raw_shards, {}
        keep = np.zeros(len(matrix), dtype=np.bool_)
        for i, raw in enumerate(matrix.metric_raw):
            shard = known.get(raw)
            if shard is None:
                shard = plan.shard(labels_of(raw))
            shards[raw] = shard
            keep[i] = shard in plan.owned
        self._raw_shards = shards
        return select(matrix, keep)

    def _warm_until(self, key: str, raw: bytes, default: float) -> float:
        plan = self._plan
        assert plan is not None
        shard = self._raw_shards[raw]
        self._shard_keys[key] = shard
        plan.count_in(shard)
        return plan.warm_until_in(shard)

    def _commit(self, plan: ShardPlan, outbox: list[ScorePoint], still: frozenset[int]) -> None:
        refused = self.owner.commit(self.watch.name, plan.committed())
        if self.push is not None:  # the scores of a shard lost or refused are the new owner's to push
            ours = still - refused
            self.push.push(self.watch.name, [pt for pt in outbox if self._shard_keys.get(pt[0]) in ours])
        if refused:  # lost between the poll and its commit: forgotten; re-warmed if ours again
            logger.warning("watch %s: shards %s were taken over during the poll", self.watch.name, sorted(refused))
            self._drop_shards(refused)
            self._held -= refused

    def _rollback(self) -> None:
        super()._rollback()
        self._shard_keys.clear()
        self._held = frozenset()

    def _drop_shards(self, shards: frozenset[int]) -> None:
        """Shards this replica no longer holds: their detector state goes (the new owner warms up its own)."""
        if not shards:
            return
        for key in [k for k, s in self._shard_keys.items() if s in shards]:
            del self._shard_keys[key]
            state = self.series.pop(key, None)
            if state is None:
                continue
            self._keys.pop(state.raw, None)
            self.metrics.scores.drop(self.watch.name, state.labels)
            if self.push is not None:
                self.push.forget(self.watch.name, key)
        logger.info("watch %s: shards %s no longer held here; their detectors dropped", self.watch.name, sorted(shards))
