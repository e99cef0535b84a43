"""Series -> shard: a stable hash of the label set, and the per-poll shard plan of a sharded watch."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from aiopsd.sources.prometheus.shards import ShardPlan, shard_in, shard_of

labelsets = st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=5)


def test_shard_is_pinned_across_processes_and_versions() -> None:
    # Fixed values: a change here moves every series of every cluster to another replica at upgrade.
    assert shard_of({}, 64) == 52
    assert shard_of({"__name__": "up", "instance": "a:9100", "job": "node"}, 64) == 60
    assert shard_of({"series": "0001"}, 1024) == 999


@given(labelsets, st.integers(min_value=1, max_value=4096))
def test_shard_ignores_label_order_and_stays_in_range(labels: dict[str, str], shards: int) -> None:
    reordered = dict(reversed(list(labels.items())))
    assert shard_of(labels, shards) == shard_of(reordered, shards)
    assert 0 <= shard_of(labels, shards) < shards


def test_label_boundaries_are_part_of_the_hash() -> None:
    # "a" = "b=c" and "a=b" = "c" would collide if pairs were joined naively; length prefixes keep them apart.
    assert shard_of({"a": "b=c"}, 2**16) != shard_of({"a=b": "c"}, 2**16)


def test_series_spread_evenly_over_the_shards() -> None:
    counts = Counter(shard_of({"instance": f"web-{i}", "job": "api"}, 64) for i in range(20_000))
    mean = 20_000 / 64
    assert len(counts) == 64
    assert max(counts.values()) < 1.3 * mean and min(counts.values()) > 0.7 * mean


def test_plan_warms_gained_shards_from_the_lookback_and_overlaps_kept_ones() -> None:
    plan = ShardPlan(
        shards=4,
        owned=frozenset({0, 1, 2}),
        marks={0: 1000.0, 1: 900.0},
        gained=frozenset({1, 2}),
        lost=frozenset(),
        end=1100.0,
    )
    # Shard 1 (taken over, mark 900) warms up from 900 - lookback; shard 2 (never scored) from end - lookback.
    assert plan.start(lookback=600, overlap=30) == 300.0
    kept = ShardPlan(shards=4, owned=frozenset({0}), marks={0: 1000.0}, gained=frozenset(), lost=frozenset(), end=1100)
    assert kept.start(lookback=600, overlap=30) == 970.0
    labels = next({"i": str(i)} for i in range(100) if shard_of({"i": str(i)}, 4) == 1)
    assert plan.owns(labels) and plan.warm_until(labels) == 900.0
    fresh = next({"i": str(i)} for i in range(100) if shard_of({"i": str(i)}, 4) == 2)
    assert plan.warm_until(fresh) == 1100.0, "a shard never scored only warms up, like a first start"
    plan.count(labels)
    assert plan.committed()[1].since == 900.0 and plan.committed()[1].series == 1
    assert plan.committed()[2].since is None and plan.committed()[2].until == 1100.0


def test_a_shard_label_written_by_prometheus_wins_over_the_hash() -> None:
    assert shard_in({"aiopsd_shard": "5", "i": "x"}, 8, "aiopsd_shard") == 5
    # Missing, not a number, or beyond the shard count (a wrong hashmod modulus): the label set's hash.
    for bad in ({"i": "x"}, {"aiopsd_shard": "x5", "i": "x"}, {"aiopsd_shard": "8", "i": "x"}):
        assert shard_in(bad, 8, "aiopsd_shard") == shard_of(bad, 8)
    assert shard_in({"aiopsd_shard": "5"}, 8, None) == shard_of({"aiopsd_shard": "5"}, 8)


def test_the_query_carries_the_owned_shards_where_it_says_so() -> None:
    plan = ShardPlan(
        shards=64,
        owned=frozenset({17, 3, 42}),
        marks={},
        gained=frozenset(),
        lost=frozenset(),
        end=0.0,
        label="aiopsd_shard",
    )
    assert plan.query('x{aiopsd_shard=~"$__shards"}') == 'x{aiopsd_shard=~"3|17|42"}'
    assert plan.query("x") == "x"
