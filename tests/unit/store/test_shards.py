"""Shard leases: rendezvous assignment moves as few shards as possible; rounds keep ownership exclusive."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from aiopsd.store import StateStore
from aiopsd.store import tables as t
from aiopsd.store.shards import ShardLeases, assignment, holders, ledger, rendezvous

names = st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=8, unique=True)


@given(names, st.text(min_size=1, max_size=12))
@settings(max_examples=60)
def test_a_joining_member_takes_only_shards_it_wins_and_a_leaving_one_gives_only_its_own(
    members: list[str], newcomer: str
) -> None:
    if newcomer in members:
        return
    before = assignment(64, members)
    after = assignment(64, [*members, newcomer])
    moved = {s for s in before if before[s] != after[s]}
    assert all(after[s] == newcomer for s in moved), "a join moves shards only to the newcomer"
    gone = members[0]
    left = assignment(64, members[1:])
    assert {s for s in before if before[s] != left[s]} == {s for s in before if before[s] == gone}


def test_assignment_is_balanced_and_independent_of_member_order() -> None:
    members = [f"host-{i}:1:{i:08x}" for i in range(3)]
    a = assignment(64, members)
    assert a == assignment(64, list(reversed(members)))
    share = [sum(1 for o in a.values() if o == m) for m in members]
    assert sum(share) == 64 and min(share) >= 12, share
    assert rendezvous(0, []) is None


def _expire(store: StateStore, name: str) -> None:
    """``name`` stopped renewing lease_ttl ago (as after kill -9)."""
    with store.write() as conn:
        conn.execute(update(t.shard_leases).where(t.shard_leases.c.holder == name).values(expires_at=0.0))
        conn.execute(update(t.shard_members).where(t.shard_members.c.name == name).values(expires_at=0.0))


def _round(replicas: list[ShardLeases], release: dict[str, frozenset[int]]) -> dict[str, frozenset[int]]:
    held = {}
    for r in replicas:
        rnd = r.renew(release.get(r.name, frozenset()))
        release[r.name] = rnd.draining
        held[r.name] = rnd.scorable
    return held


def test_rounds_give_every_shard_exactly_one_holder_through_join_and_death(store: StateStore) -> None:
    a, b = ShardLeases(store, "a", 16, 30), ShardLeases(store, "b", 16, 30)
    release: dict[str, frozenset[int]] = {}
    a.renew()  # alone: a takes all 16
    assert holders(store) == dict.fromkeys(range(16), "a")
    # b joins: a stops scoring b's shards at its next round, hands them back one round later; b takes them.
    for _ in range(3):
        held = _round([b, a], release)
    assert held["a"] | held["b"] == frozenset(range(16)) and not held["a"] & held["b"]
    assert {s for s, h in holders(store).items() if h == "b"} == {
        s for s, o in assignment(16, ["a", "b"]).items() if o == "b"
    }
    c = ShardLeases(store, "c", 16, 30)
    for _ in range(3):
        held = _round([a, b, c], release)
    assert set().union(*held.values()) == set(range(16))
    assert sum(len(h) for h in held.values()) == 16
    _expire(store, "b")  # b dies: its leases lapse, a and c take them at their next round
    held = _round([a, c], release)
    assert held["a"] | held["c"] == frozenset(range(16)) and not held["a"] & held["c"]


def test_a_member_with_another_shard_count_holds_nothing(store: StateStore) -> None:
    a = ShardLeases(store, "a", 8, 30)
    a.renew()
    odd = ShardLeases(store, "odd", 16, 30)
    rnd = odd.renew()
    assert rnd.held == frozenset() and rnd.cluster_shards == 8
    assert a.renew().scorable == frozenset(range(8)), "the misconfigured member takes nothing from the cluster"


def test_watermark_commits_are_fenced_by_the_lease_and_the_stored_mark(store: StateStore) -> None:
    a, b = ShardLeases(store, "a", 2, 30), ShardLeases(store, "b", 2, 30)
    a.renew()
    assert a.commit("w", {0: (None, 100.0, 3), 1: (None, 100.0, 2)}) == frozenset()
    assert a.marks("w", [0, 1]) == {0: 100.0, 1: 100.0}
    assert a.commit("w", {0: (100.0, 110.0, 3)}) == frozenset()
    assert a.commit("w", {0: (100.0, 120.0, 3)}) == {0}, "a poll that did not start from the stored mark"
    assert b.commit("w", {1: (100.0, 110.0, 2)}) == {1}, "not the lease holder"
    _expire(store, "a")
    assert a.commit("w", {1: (100.0, 110.0, 2)}) == {1}, "an expired lease fences its own holder out"
    rows = ledger(store, "w")
    assert [(r["shard"], r["holder"], r["since"], r["until"], r["series"]) for r in rows] == [(0, "a", 100.0, 110.0, 3)]


def test_leave_hands_every_lease_back(store: StateStore) -> None:
    a = ShardLeases(store, "a", 4, 30)
    a.renew()
    a.leave()
    assert holders(store) == {}
