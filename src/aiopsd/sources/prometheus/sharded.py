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

The decision loop stays with the leader (the dispatcher reads every replica's findings from the
shared store), so the engine's exactly-once guarantees are those of one replica.
"""

from __future__ import annotations

import logging
import math

from aiopsd.config import PrometheusConfig, WatchConfig
from aiopsd.models import Series
from aiopsd.sources.base import Poll, SourceMetrics, SourceStore
from aiopsd.sources.prometheus.client import RangeClient
from aiopsd.sources.prometheus.shards import ShardOwner, ShardPlan, plan_poll
from aiopsd.sources.prometheus.watch import PrometheusWatch

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
    ) -> None:
        super().__init__(watch, prometheus, client, store, metrics)
        self.owner = owner
        self._held: frozenset[int] = frozenset()  # the shards this watch scored in its last poll
        self._shard_keys: dict[str, int] = {}  # series key -> shard, for the series in self.series
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
        start = plan.start(lookback=w.lookback, overlap=self.prometheus.overlap)
        # SourceError: source down. The query carries the shard selection where it can (PLACEHOLDER);
        # PromQL cannot hash label sets, so the series are also filtered after the fetch.
        batch = self.client.query_range(w.name, plan.query(w.query), start, end, w.step)
        batch = [s for s in batch if plan.owns(s.labels)]
        self._plan = plan
        try:
            findings, newest = self._judge(batch, now, warm_until=end)
        except Exception:
            self._rollback()
            raise
        finally:
            self._plan = None
        still = self.owner.owned()  # a shard lost meanwhile is the new owner's to report
        findings = [f for f in findings if self._shard_keys.get(str(f.details.get("series"))) in still]
        self._shard_keys = {k: s for k, s in self._shard_keys.items() if k in self.series}
        self._held = plan.owned
        return Poll(
            findings=findings,
            lag=now - newest if newest > -math.inf else None,
            commit=lambda: self._commit(plan),
            rollback=self._rollback,
        )

    def _warm_until(self, key: str, series: Series, default: float) -> float:
        plan = self._plan
        assert plan is not None
        self._shard_keys[key] = plan.shard(series.labels)
        plan.count(series.labels)
        return plan.warm_until(series.labels)

    def _commit(self, plan: ShardPlan) -> None:
        refused = self.owner.commit(self.watch.name, plan.committed())
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
            if state is not None:
                self.metrics.scores.drop(self.watch.name, state.labels)
        logger.info("watch %s: shards %s no longer held here; their detectors dropped", self.watch.name, sorted(shards))
