"""Two replicas' sharded watches on one store: every series scored by one of them, and a takeover
continues a dead replica's shards from their watermarks with warmed-up detectors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import update

from aiopsd.config import PrometheusConfig, ShardingConfig, WatchConfig
from aiopsd.daemon.metrics import Metrics
from aiopsd.daemon.shards import ShardKeeper
from aiopsd.models import FindingStatus, series_key
from aiopsd.sources.base import ScorePoint
from aiopsd.sources.prometheus import sharded
from aiopsd.sources.prometheus.matrix import labels_of
from aiopsd.sources.prometheus.sharded import ShardedWatch
from aiopsd.sources.prometheus.shards import Committed, shard_of
from aiopsd.store import StateStore
from aiopsd.store import tables as t
from aiopsd.store.shards import ledger
from aiopsd.testing import ScriptedRange
from tests.support import run_poll

SHARDS = 8


def replica(name: str, store: StateStore, src: ScriptedRange) -> tuple[ShardKeeper, ShardedWatch, list[str]]:
    gains: list[str] = []
    keeper = ShardKeeper(store, name, ShardingConfig(enabled=True, shards=SHARDS), on_gain=lambda: gains.append(name))
    w = ShardedWatch(
        WatchConfig(name="w", query="q", step=1, interval=1, lookback=600, detector="mad", resolve_after=3),
        PrometheusConfig(url="http://unused", overlap=5, stale_after=3600),
        src,
        store,
        Metrics(),
        keeper,
    )
    return keeper, w, gains


def test_each_series_scored_once_and_a_dead_replicas_shards_continue_from_their_watermarks(tmp_path: Path) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 's.db'}")
    rng = np.random.default_rng(3)
    ts = np.arange(0.0, 1000.0)
    src = ScriptedRange()
    labelsets = [(("instance", f"web-{i}"),) for i in range(40)]
    for labels in labelsets:
        src.data[labels] = (ts, 10 + rng.normal(0, 0.5, ts.size))
    ka, wa, _ = replica("a", store, src)
    kb, wb, gains_b = replica("b", store, src)
    for _ in range(3):  # join: b's shards move from a to b within two rounds
        ka.renew()
        kb.renew()
    owned_a, owned_b = ka.owned(), kb.owned()
    assert owned_a | owned_b == frozenset(range(SHARDS)) and not owned_a & owned_b and owned_b
    # Two anomalies in one of b's series: one while b is alive, one after it died.
    victim = next(lb for lb in labelsets if shard_of(dict(lb), SHARDS) in owned_b)
    src.data[victim][1][750:756] = 60.0
    src.data[victim][1][850:856] = 60.0

    for now in (600.0, 700.0, 800.0):
        run_poll(wa, now)
        run_poll(wb, now)
    assert not set(wa.series) & set(wb.series)
    assert len(wa.series) + len(wb.series) == 40
    [opened] = [f for f in store.list_findings() if f.starts_at.timestamp() == 750.0]

    # b is killed: it stops renewing; its leases lapse (forced here) and a takes its shards at its next round.
    with store.write() as conn:
        conn.execute(update(t.shard_leases).where(t.shard_leases.c.holder == "b").values(expires_at=0.0))
        conn.execute(update(t.shard_members).where(t.shard_members.c.name == "b").values(expires_at=0.0))
    ka.renew()
    assert ka.owned() == frozenset(range(SHARDS))
    run_poll(wa, 900.0)
    assert len(wa.series) == 40
    found = store.list_findings()
    later = [f for f in found if f.starts_at.timestamp() == 850.0]
    assert len(later) == 1, "a scored the points b never scored, with a detector warmed up on b's history"
    assert [f.id for f in found if f.starts_at.timestamp() == 750.0] == [opened.id]
    mine = sorted(f.starts_at.timestamp() for f in found if f.labels["instance"] == dict(victim)["instance"])
    assert mine == [750.0, 850.0] and all(f.status == FindingStatus.RESOLVED for f in later)
    assert not [f for f in found if f.starts_at.timestamp() < 600.0], "no finding from warm-up history"

    rows = ledger(store, "w")
    for shard in range(SHARDS):
        ranges = [(r["since"], r["until"], r["holder"]) for r in rows if r["shard"] == shard]
        assert [(s, u) for s, u, _ in ranges] == [(600.0, 700.0), (700.0, 800.0), (800.0, 900.0)], shard
        assert ranges[-1][2] == "a"
    assert gains_b  # b's keeper asked for an immediate poll when it gained shards
    store.close()


def test_a_replica_holding_no_shard_does_not_query(tmp_path: Path) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 's.db'}")

    class Refuse(ScriptedRange):
        def query_range(self, *args: object) -> list[object]:  # type: ignore[override]
            raise AssertionError("queried without holding a shard")

    _, w, _ = replica("a", store, Refuse())
    assert run_poll(w, 100.0) == []
    store.close()


def test_without_sharding_the_shard_selection_selects_every_series(tmp_path: Path) -> None:
    from aiopsd.config import Settings
    from aiopsd.sources.base import SourceEnv
    from aiopsd.sources.prometheus.watch import PrometheusWatch, plan

    store = StateStore(f"sqlite:///{tmp_path / 's.db'}")
    watch = {"name": "w", "query": 'x{aiopsd_shard=~"$__shards"}', "step": "15s", "interval": "15s"}
    [spec] = plan(Settings(watches=[watch]))
    built = spec.build(SourceEnv(store=store, metrics=Metrics()))
    assert isinstance(built, PrometheusWatch) and not isinstance(built, ShardedWatch)
    assert built.watch.query == 'x{aiopsd_shard=~".*"}'
    keeper, _, _ = replica("a", store, ScriptedRange())
    sharded = spec.build(SourceEnv(store=store, metrics=Metrics(), shard_owner=keeper))
    assert isinstance(sharded, ShardedWatch) and sharded.leader_only is False
    store.close()


class Owner:
    """A lease keeper whose shards and commit refusals a test sets."""

    shards = 4
    label = None

    def __init__(self) -> None:
        self.held = frozenset(range(self.shards))
        self.refuse: frozenset[int] = frozenset()

    def owned(self) -> frozenset[int]:
        return self.held

    def marks(self, source: str, shards: Iterable[int]) -> dict[int, float]:
        return {}

    def commit(self, source: str, shards: Mapping[int, Committed]) -> frozenset[int]:
        return self.refuse & frozenset(shards)


class Push:
    def __init__(self) -> None:
        self.points: list[str] = []
        self.forgotten: list[str] = []

    def push(self, watch: str, points: Sequence[ScorePoint]) -> None:
        self.points += [key for key, *_ in points]

    def forget(self, watch: str, key: str) -> None:
        self.forgotten.append(key)


def test_other_shards_series_get_no_state_and_a_refused_shards_scores_are_not_pushed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 's.db'}")
    ts = np.arange(0.0, 400.0)
    labelsets = [(("instance", f"web-{i}"),) for i in range(24)]
    src = ScriptedRange({lb: (ts, np.full(ts.size, 10.0)) for lb in labelsets})
    owner, push = Owner(), Push()
    owner.held = frozenset({0, 1})
    w = ShardedWatch(
        WatchConfig(
            name="w", query="q", step=1, interval=1, lookback=300, detector="mad", export={"scores": "remote_write"}
        ),
        PrometheusConfig(url="http://unused", overlap=5, stale_after=3600),
        src,
        store,
        Metrics(),
        owner,
        push,
    )
    decoded: list[bytes] = []

    def counted(raw: bytes) -> dict[str, str]:
        decoded.append(raw)
        return labels_of(raw)

    monkeypatch.setattr(sharded, "labels_of", counted)
    for now in (300.0, 330.0, 360.0):
        run_poll(w, now)
    mine = {series_key("w", dict(lb)) for lb in labelsets if shard_of(dict(lb), 4) in owner.held}
    assert set(w.series) == mine and 0 < len(mine) < len(labelsets)
    assert len(decoded) == len(labelsets), "each label set is hashed once, not at every poll"
    assert set(push.points) == mine

    # Shard 1 is taken over between the poll and its commit: its points are the new owner's to push.
    lost = {k for k in mine if shard_of(dict(w.series[k].labels), 4) == 1}
    owner.refuse = frozenset({1})
    push.points.clear()
    run_poll(w, 390.0)
    assert lost and set(push.points) == mine - lost
    assert set(w.series) == mine - lost and set(push.forgotten) == lost
    store.close()
