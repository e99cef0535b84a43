"""Shard leases, shard membership, per-shard watermarks and the scoring ledger (PostgreSQL).

Each replica runs one :meth:`ShardLeases.renew` round every ``lease_ttl / 5`` in one
transaction: it heartbeats its membership row, computes which shards it *should* hold
(rendezvous hashing over the live members, see :func:`rendezvous`), renews those it holds,
takes those that are free or whose holder's lease expired, and hands back those it should no
longer hold (one round after it stopped scoring them, so no poll of its own still uses them).
A shard held by a live peer that has not handed it back yet is left alone: at most one holder
per shard, always. Times are the database's (``clock_timestamp()``), as for the leader lease.

Every replica of a cluster must hash into the same number of shards. The oldest live member's
count is the cluster's: a replica configured otherwise holds nothing and says so (a restart
with the right ``sharding.shards`` fixes it), instead of scoring series twice.

A watermark commit (:meth:`ShardLeases.commit`) is fenced: it locks the shard's lease row and
writes only while the lease is ours and unexpired and the stored watermark is still the one
the poll started from. It also appends the scored range to ``shard_ledger`` (kept
:data:`LEDGER_KEEP` seconds): which replica scored which points of which shard.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Update, and_, delete, select, update

from aiopsd.store import tables as t
from aiopsd.store.ha import db_now
from aiopsd.store.state import StateStore

LEDGER_KEEP = 3600.0
FREE = ""
# What a poll scored in one shard: points after ``since`` (None: warm-up only) up to ``until``, in how many series.
Scored = tuple[float | None, float, int]


def _weight(shard: int, member: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{shard}\x00{member}".encode(), digest_size=8).digest(), "big")


def rendezvous(shard: int, members: Sequence[str]) -> str | None:
    """The member that should hold ``shard``: the highest hash of (shard, member), None if no member.

    A member joining takes only the shards it now wins (about 1/n of them) and a member leaving
    gives up only its own; no other shard moves (highest-random-weight hashing).
    """
    return max(members, key=lambda m: (_weight(shard, m), m), default=None)


def assignment(shards: int, members: Sequence[str]) -> dict[int, str | None]:
    return {s: rendezvous(s, members) for s in range(shards)}


@dataclass(frozen=True)
class ShardRound:
    """One renewal round as this replica saw it."""

    held: frozenset[int]  # leases held after the round (scorable ones and those handed back next round)
    draining: frozenset[int]  # held, but should move to another member: not scored any more
    acquired: frozenset[int]
    released: frozenset[int]
    members: tuple[str, ...]  # live members that agree on the shard count
    cluster_shards: int
    db_now: float

    @property
    def scorable(self) -> frozenset[int]:
        return self.held - self.draining


class ShardLeases:
    """One replica's shard leases on the shared database."""

    def __init__(self, store: StateStore, name: str, shards: int, ttl: float) -> None:
        self.store, self.name, self.shards, self.ttl = store, name, shards, ttl
        self.started_at = time.time()

    def renew(self, release: Iterable[int] = ()) -> ShardRound:
        """Heartbeat, then renew, take and hand back leases; ``release``: shards drained last round."""
        pg = self.store.dialect == "postgresql"
        release = frozenset(release)
        with self.store.write() as conn:
            now = db_now(conn)
            ins = self.store.insert(t.shard_members).values(
                name=self.name, shards=self.shards, started_at=self.started_at, expires_at=now + self.ttl
            )
            conn.execute(
                ins.on_conflict_do_update(
                    index_elements=["name"], set_={"shards": self.shards, "expires_at": now + self.ttl}
                )
            )
            live = conn.execute(
                select(t.shard_members.c.name, t.shard_members.c.shards)
                .where(t.shard_members.c.expires_at >= now)
                .order_by(t.shard_members.c.started_at, t.shard_members.c.name)
            ).all()
            cluster = int(live[0].shards) if live else self.shards
            members = tuple(str(r.name) for r in live if int(r.shards) == cluster)
            alive = {str(r.name) for r in live}
            have = conn.execute(select(t.shard_leases.c.shard).where(t.shard_leases.c.shard < self.shards)).all()
            if len(have) < self.shards:
                missing = set(range(self.shards)) - {int(r.shard) for r in have}
                conn.execute(
                    self.store.insert(t.shard_leases)
                    .values([{"shard": s, "holder": FREE, "acquired_at": 0.0, "expires_at": 0.0} for s in missing])
                    .on_conflict_do_nothing(index_elements=["shard"])
                )
            q = select(t.shard_leases).order_by(t.shard_leases.c.shard)
            rows = conn.execute(q.with_for_update() if pg else q).all()
            agreed = cluster == self.shards
            held: set[int] = set()
            draining: set[int] = set()
            acquired: set[int] = set()
            released: set[int] = set()
            for row in rows:
                s = int(row.shard)
                should = agreed and s < self.shards and rendezvous(s, members) == self.name
                mine = row.holder == self.name
                if mine and not should and s in release:
                    conn.execute(_set(s, holder=FREE, expires_at=0.0))
                    released.add(s)
                elif mine:
                    conn.execute(_set(s, expires_at=now + self.ttl))
                    held.add(s)
                    if not should:
                        draining.add(s)
                elif should and (row.holder == FREE or row.expires_at < now or row.holder not in alive):
                    conn.execute(_set(s, holder=self.name, acquired_at=now, expires_at=now + self.ttl))
                    held.add(s)
                    acquired.add(s)
            conn.execute(delete(t.shard_ledger).where(t.shard_ledger.c.at < now - LEDGER_KEEP))
            conn.execute(delete(t.shard_members).where(t.shard_members.c.expires_at < now - 3600))
        return ShardRound(
            held=frozenset(held),
            draining=frozenset(draining),
            acquired=frozenset(acquired),
            released=frozenset(released),
            members=members,
            cluster_shards=cluster,
            db_now=now,
        )

    def leave(self) -> None:
        """On a clean stop: hand every lease back at once and drop the membership row."""
        with self.store.write() as conn:
            conn.execute(
                update(t.shard_leases).where(t.shard_leases.c.holder == self.name).values(holder=FREE, expires_at=0.0)
            )
            conn.execute(delete(t.shard_members).where(t.shard_members.c.name == self.name))

    def marks(self, source: str, shards: Iterable[int]) -> dict[int, float]:
        wanted = sorted(shards)
        with self.store.read() as conn:
            rows = conn.execute(
                select(t.shard_marks.c.shard, t.shard_marks.c.watermark).where(
                    and_(t.shard_marks.c.source == source, t.shard_marks.c.shard.in_(wanted))
                )
            ).all()
        return {int(r.shard): float(r.watermark) for r in rows}

    def commit(self, source: str, shards: Mapping[int, Scored]) -> frozenset[int]:
        """Advance the watermarks of ``shards`` (shard -> (since, until, series)), fenced by their leases;
        returns the shards refused."""
        if not shards:
            return frozenset()
        pg = self.store.dialect == "postgresql"
        wanted = sorted(shards)
        with self.store.write() as conn:
            now = db_now(conn)
            q = select(t.shard_leases.c.shard).where(
                and_(
                    t.shard_leases.c.shard.in_(wanted),
                    t.shard_leases.c.holder == self.name,
                    t.shard_leases.c.expires_at >= now,
                )
            )
            ours = {int(r.shard) for r in conn.execute(q.with_for_update() if pg else q)}
            stored = {
                int(r.shard): float(r.watermark)
                for r in conn.execute(
                    select(t.shard_marks.c.shard, t.shard_marks.c.watermark).where(
                        and_(t.shard_marks.c.source == source, t.shard_marks.c.shard.in_(wanted))
                    )
                )
            }
            ok = [s for s in wanted if s in ours and stored.get(s) == shards[s][0]]
            if ok:
                ins = self.store.insert(t.shard_marks).values(
                    [
                        {
                            "source": source,
                            "shard": s,
                            "watermark": shards[s][1],
                            "holder": self.name,
                            "updated_at": now,
                        }
                        for s in ok
                    ]
                )
                conn.execute(
                    ins.on_conflict_do_update(
                        index_elements=["source", "shard"],
                        set_={"watermark": ins.excluded.watermark, "holder": self.name, "updated_at": now},
                    )
                )
                ledger = [
                    {
                        "source": source,
                        "shard": s,
                        "holder": self.name,
                        "since": since,
                        "until": until,
                        "series": series,
                        "at": now,
                    }
                    for s in ok
                    for since, until, series in [shards[s]]
                    if since is not None and until > since and series
                ]
                if ledger:
                    conn.execute(t.shard_ledger.insert().values(ledger))
        return frozenset(shards) - frozenset(ok)


def _set(shard: int, **values: object) -> Update:
    return update(t.shard_leases).where(t.shard_leases.c.shard == shard).values(**values)


def ledger(store: StateStore, source: str | None = None) -> list[dict[str, Any]]:
    """The scoring ledger, oldest first (tests, bench and the operator's "who scored what")."""
    q = select(t.shard_ledger).order_by(t.shard_ledger.c.id)
    if source is not None:
        q = q.where(t.shard_ledger.c.source == source)
    with store.read() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def holders(store: StateStore) -> dict[int, str]:
    """Shard -> current holder (unexpired leases only)."""
    with store.read() as conn:
        now = db_now(conn)
        rows = conn.execute(select(t.shard_leases).where(t.shard_leases.c.expires_at >= now)).all()
    return {int(r.shard): str(r.holder) for r in rows if r.holder != FREE}
