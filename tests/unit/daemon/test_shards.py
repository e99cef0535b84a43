"""The shard lease keeper: what it lets the watches score, and when it stops."""

from __future__ import annotations

from collections.abc import Iterable

from aiopsd.config import ShardingConfig
from aiopsd.daemon.metrics import Metrics
from aiopsd.daemon.shards import ShardKeeper, _ranges
from aiopsd.errors import StoreUnavailableError
from aiopsd.store import StateStore
from aiopsd.store.shards import ShardRound


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_owned_shards_lapse_on_their_own_when_renewals_fail(store: StateStore) -> None:
    clock = Clock()
    gains: list[int] = []
    metrics = Metrics()
    keeper = ShardKeeper(
        store,
        "a",
        ShardingConfig(enabled=True, shards=8, lease_ttl=10),
        metrics,
        on_gain=lambda: gains.append(1),
        clock=clock,
    )
    assert keeper.owned() == frozenset(), "nothing before the first round"
    keeper.renew()
    assert keeper.owned() == frozenset(range(8)) and gains == [1]
    assert metrics.shards_held._value.get() == 8
    keeper.renew()
    assert gains == [1], "renewing what it holds is not a gain"

    def down(release: Iterable[int] = ()) -> ShardRound:
        raise StoreUnavailableError("the database is down")

    keeper.leases.renew = down  # type: ignore[method-assign]
    clock.now += 9.9
    assert keeper.renew() is None
    assert keeper.owned() == frozenset(range(8)), "still inside the lease the last round got"
    clock.now += 0.2
    assert keeper.owned() == frozenset(), "past lease_ttl since the last good round: stop scoring"


def test_leave_stops_scoring_at_once(store: StateStore) -> None:
    keeper = ShardKeeper(store, "a", ShardingConfig(enabled=True, shards=4))
    keeper.renew()
    keeper.leave()
    assert keeper.owned() == frozenset()


def test_shard_sets_read_as_ranges_in_the_log() -> None:
    assert _ranges([0, 1, 2, 3, 7, 9, 10]) == "0-3,7,9-10"
    assert _ranges([]) == "none"
