"""The shard lease keeper: this replica's share of the shards, renewed by the daemon's scheduler.

It is the :class:`~aiopsd.sources.prometheus.shards.ShardOwner` of every sharded watch. Each
round (every ``sharding.lease_ttl / 5``) renews the leases in one transaction (see
:mod:`aiopsd.store.shards`). What the watches may score is the set held after the last
successful round, and only until ``lease_ttl`` after that round *started* (local monotonic
clock): the database expires the lease no earlier, so a replica that cannot renew (database
unreachable, process stalled) stops scoring before any peer can take its shards over.

A shard the rendezvous hash moves elsewhere (a replica joined) stops being scored here at
once and is handed back one round later, when no poll of this replica uses it any more; the
new owner takes it at its next round. A dead replica's shards are free once its leases expire
(``lease_ttl`` after its last renewal) and taken at the next round of the replicas that win
them; gaining a shard asks for an immediate poll of the watches (``on_gain``), so the takeover
costs at most ``lease_ttl`` + one round + one poll after the kill.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

from apscheduler.schedulers.base import BaseScheduler

from aiopsd.config import ShardingConfig
from aiopsd.daemon.metrics import Metrics
from aiopsd.daemon.runtime import Runtime
from aiopsd.errors import AiopsdError
from aiopsd.sources.prometheus.shards import Committed
from aiopsd.store import StateStore
from aiopsd.store.shards import ShardLeases, ShardRound

logger = logging.getLogger(__name__)

ROUNDS_PER_TTL = 5


def _nothing() -> None:
    return None


class ShardKeeper:
    def __init__(
        self,
        store: StateStore,
        name: str,
        config: ShardingConfig,
        metrics: Metrics | None = None,
        *,
        on_gain: Callable[[], None] = _nothing,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.leases = ShardLeases(store, name, config.shards, config.lease_ttl)
        self.name = name
        self.label = config.label
        self.ttl = config.lease_ttl
        self.metrics = metrics
        self.on_gain = on_gain
        self.clock = clock
        self._lock = threading.Lock()
        self._owned: frozenset[int] = frozenset()
        self._draining: frozenset[int] = frozenset()
        self._valid_until = 0.0
        self.last_round: ShardRound | None = None
        self.gains = 0  # rounds that gained shards so far (a poll running meanwhile polls again)

    @property
    def shards(self) -> int:
        return self.leases.shards

    @property
    def period(self) -> float:
        """Seconds between renewal rounds."""
        return self.ttl / ROUNDS_PER_TTL

    def renew(self) -> ShardRound | None:
        """One round; None when the database could not be reached (the held set then lapses on its own)."""
        started = self.clock()
        try:
            rnd = self.leases.renew(release=self._draining)
        except AiopsdError as exc:
            logger.error("shard lease renewal failed (scoring stops when the leases lapse): %s", exc)
            return None
        with self._lock:
            before = self._owned if started < self._valid_until else frozenset()
            self._owned = rnd.scorable
            self._draining = rnd.draining
            self._valid_until = started + self.ttl
        self.last_round = rnd
        if rnd.cluster_shards != self.shards:
            logger.error(
                "this replica is configured with sharding.shards %d but the cluster uses %d: it scores nothing; "
                "restart it with shards: %d",
                self.shards,
                rnd.cluster_shards,
                rnd.cluster_shards,
            )
        gained, lost = rnd.scorable - before, before - rnd.scorable
        if gained or lost:
            logger.info(
                "shards: %d held of %d over %d replicas (gained %s, moving away %s)",
                len(rnd.scorable),
                self.shards,
                len(rnd.members),
                _ranges(gained),
                _ranges(lost),
            )
        if self.metrics is not None:
            self.metrics.shards_held.set(len(rnd.scorable))
            self.metrics.shard_members.set(len(rnd.members))
        if gained:
            self.gains += 1
            self.on_gain()
        return rnd

    def owned(self) -> frozenset[int]:
        with self._lock:
            return self._owned if self.clock() < self._valid_until else frozenset()

    def marks(self, source: str, shards: Iterable[int]) -> dict[int, float]:
        return self.leases.marks(source, shards)

    def commit(self, source: str, shards: Mapping[int, Committed]) -> frozenset[int]:
        return self.leases.commit(source, {s: (c.since, c.until, c.series) for s, c in shards.items()})

    def leave(self) -> None:
        """Clean stop: score nothing more, hand every lease back so the peers take them at their next round."""
        with self._lock:
            self._owned = frozenset()
            self._valid_until = 0.0
        self.leases.leave()


def _ranges(shards: Iterable[int]) -> str:
    """``0-3,7,9-10``: a shard set for a log line."""
    out: list[str] = []
    for s in sorted(shards):
        if out and out[-1].split("-")[-1] == str(s - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{s}"
        else:
            out.append(str(s))
    return ",".join(out) or "none"


def shard_keeper(runtime: Runtime, on_gain: Callable[[], None]) -> ShardKeeper | None:
    """The keeper when watches are sharded (``sharding.enabled`` on PostgreSQL), else None."""
    if not runtime.settings.sharding.enabled:
        return None
    if runtime.store.dialect != "postgresql":
        logger.warning("sharding.enabled is ignored with SQLite (one replica): this daemon scores every series")
        return None
    return ShardKeeper(runtime.store, runtime.replica, runtime.settings.sharding, runtime.metrics, on_gain=on_gain)


def poll_now(scheduler: BaseScheduler, job_ids: Iterable[str]) -> None:
    """Shards gained: run these poll jobs now rather than at their next turn (a takeover scores sooner).

    A job already running is not started twice (``max_instances=1``); the daemon's poll sees the
    gain when it ends and polls once more.
    """
    if scheduler.running:
        for job_id in job_ids:
            scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))
