"""Sharded detection: which shard a series belongs to, and what a sharded watch asks of its owner.

A series' shard is a stable hash of its label set (BLAKE2b over the sorted ``name=value``
pairs, never Python's per-process ``hash()``), so every replica, every restart and every
version puts a series in the same shard. The watch name is not hashed: one label set lands in
the same shard in every watch, so renaming a watch moves nothing.

Prometheus cannot hash labels in PromQL, so the query cannot carry the shard selection: each
replica runs the watch's whole query and keeps the series of the shards it holds (filtering
right after the fetch, before any detector state is built). Sharding therefore spreads the
detection CPU and the detector memory over the replicas, not the cost of the query itself.

The watch sees its owner only through :class:`ShardOwner` (the daemon's lease keeper
implements it on PostgreSQL), so sources still import nothing from the store.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol


def shard_of(labels: Mapping[str, str], shards: int) -> int:
    """The shard (0..shards-1) of the series with these labels; the same on every replica and run."""
    h = hashlib.blake2b(digest_size=8)
    for k, v in sorted(labels.items()):
        # Lengths first: no two label sets serialise to the same bytes, whatever their values hold.
        kb, vb = k.encode(), v.encode()
        h.update(len(kb).to_bytes(4, "big") + kb + len(vb).to_bytes(4, "big") + vb)
    return int.from_bytes(h.digest(), "big") % shards


@dataclass(frozen=True)
class Committed:
    """What one poll scored in one shard: points after ``since`` (None: warm-up only) up to ``until``."""

    since: float | None
    until: float
    series: int


class ShardOwner(Protocol):
    """What a sharded watch needs from the replica's lease keeper."""

    @property
    def shards(self) -> int:
        """How many shards series are hashed into (the same on every replica)."""

    def owned(self) -> frozenset[int]:
        """The shards this replica may score right now (leases held and not locally expired)."""

    def marks(self, source: str, shards: Iterable[int]) -> dict[int, float]:
        """The stored watermark of each of ``shards`` of watch ``source`` that has one."""

    def commit(self, source: str, shards: Mapping[int, Committed]) -> frozenset[int]:
        """Advance the watermarks, fenced by the leases; returns the shards whose commit was refused."""


@dataclass
class ShardPlan:
    """One poll of a sharded watch: the shards it scores, where each one's scoring starts, what changed."""

    shards: int
    owned: frozenset[int]
    marks: dict[int, float]
    gained: frozenset[int]
    lost: frozenset[int]
    end: float
    scored: dict[int, int] = field(default_factory=dict)

    def owns(self, labels: Mapping[str, str]) -> bool:
        return shard_of(labels, self.shards) in self.owned

    def warm_until(self, labels: Mapping[str, str]) -> float:
        """A new series warms up to its shard's stored watermark (whoever scored it last) and is
        scored after it; in a shard never scored before, the whole lookback only warms up."""
        return self.marks.get(shard_of(labels, self.shards), self.end)

    def start(self, *, lookback: float, overlap: float) -> float:
        """Start of the range query: ``lookback`` before the watermark of each shard new to this watch (to
        warm up from), ``overlap`` before that of each shard it kept (late samples); the earliest wins."""
        starts = [self.marks.get(s, self.end) - (lookback if s in self.gained else overlap) for s in self.owned]
        return min(starts, default=self.end - overlap)

    def count(self, labels: Mapping[str, str]) -> None:
        s = shard_of(labels, self.shards)
        self.scored[s] = self.scored.get(s, 0) + 1

    def committed(self) -> dict[int, Committed]:
        return {s: Committed(self.marks.get(s), self.end, self.scored.get(s, 0)) for s in sorted(self.owned)}


def plan_poll(owner: ShardOwner, source: str, held: frozenset[int], end: float) -> ShardPlan:
    """The plan of one poll given the shards the watch held after its previous poll."""
    owned = owner.owned()
    marks = owner.marks(source, owned) if owned else {}
    return ShardPlan(
        shards=owner.shards,
        owned=owned,
        marks={s: m for s, m in marks.items() if math.isfinite(m)},
        gained=owned - held,
        lost=held - owned,
        end=end,
    )
