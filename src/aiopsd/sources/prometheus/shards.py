"""Sharded detection: which shard a series belongs to, and what a sharded watch asks of its owner.

A series' shard is a stable hash of its label set (BLAKE2b over the sorted ``name=value``
pairs, never Python's per-process ``hash()``), so every replica, every restart and every
version puts a series in the same shard. The watch name is not hashed: one label set lands in
the same shard in every watch, so renaming a watch moves nothing.

PromQL cannot hash labels, so by default the query cannot carry the shard selection: each
replica runs the watch's whole query and keeps the series of the shards it holds (filtering
right after the fetch, before any detector state is built). That spreads the detection CPU and
the detector memory over the replicas, not the cost of the query.

Where Prometheus labels each series with its shard itself (``metric_relabel_configs`` with
``action: hashmod``, ``modulus`` = ``sharding.shards``, into the label named by
``sharding.label``), a series' shard is that label's value, and a query that contains
:data:`PLACEHOLDER` (e.g. ``app_latency{aiopsd_shard=~"$__shards"}``) gets it replaced by the
regex of this replica's shards (digits and ``|`` only): then each replica fetches only its share.

The watch sees its owner only through :class:`ShardOwner` (the daemon's lease keeper
implements it on PostgreSQL), so sources still import nothing from the store.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from aiopsd.config.sections import SHARDS_PLACEHOLDER as PLACEHOLDER


def shard_of(labels: Mapping[str, str], shards: int) -> int:
    """The shard (0..shards-1) of the series with these labels; the same on every replica and run."""
    h = hashlib.blake2b(digest_size=8)
    for k, v in sorted(labels.items()):
        # Lengths first: no two label sets serialise to the same bytes, whatever their values hold.
        kb, vb = k.encode(), v.encode()
        h.update(len(kb).to_bytes(4, "big") + kb + len(vb).to_bytes(4, "big") + vb)
    return int.from_bytes(h.digest(), "big") % shards


def shard_in(labels: Mapping[str, str], shards: int, label: str | None) -> int:
    """The shard of a series: the value of ``label`` when Prometheus set it (a number below ``shards``),
    else the hash of the label set."""
    if label is not None:
        value = labels.get(label, "")
        if value.isdigit() and int(value) < shards:
            return int(value)
    return shard_of(labels, shards)


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

    @property
    def label(self) -> str | None:
        """The label Prometheus writes each series' shard into (hashmod relabeling), if any."""

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
    label: str | None = None
    scored: dict[int, int] = field(default_factory=dict)

    def shard(self, labels: Mapping[str, str]) -> int:
        return shard_in(labels, self.shards, self.label)

    def owns(self, labels: Mapping[str, str]) -> bool:
        return self.shard(labels) in self.owned

    def query(self, query: str) -> str:
        """``query`` with :data:`PLACEHOLDER` replaced by the regex of the owned shards (e.g. ``3|17|42``)."""
        return query.replace(PLACEHOLDER, "|".join(str(s) for s in sorted(self.owned)))

    def warm_until(self, labels: Mapping[str, str]) -> float:
        """A new series warms up to its shard's stored watermark (whoever scored it last) and is
        scored after it; in a shard never scored before, the whole lookback only warms up."""
        return self.warm_until_in(self.shard(labels))

    def warm_until_in(self, shard: int) -> float:
        """:meth:`warm_until` of a series whose shard is known."""
        return self.marks.get(shard, self.end)

    def start(self, *, lookback: float, overlap: float) -> float:
        """Start of the range query: ``lookback`` before the watermark of each shard new to this watch (to
        warm up from), ``overlap`` before that of each shard it kept (late samples); the earliest wins."""
        starts = [self.marks.get(s, self.end) - (lookback if s in self.gained else overlap) for s in self.owned]
        return min(starts, default=self.end - overlap)

    def count(self, labels: Mapping[str, str]) -> None:
        self.count_in(self.shard(labels))

    def count_in(self, shard: int) -> None:
        """One more series scored in ``shard`` by this poll (the ledger's ``series``)."""
        self.scored[shard] = self.scored.get(shard, 0) + 1

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
        label=owner.label,
    )
