"""Leader lease and replica heartbeats for several replicas on one PostgreSQL database.

Why a lease row with a TTL rather than a session advisory lock: an advisory lock is
released only when PostgreSQL notices the holder's connection is gone, which after a
``kill -9`` or a network partition depends on TCP keepalives (minutes by default), and a
holder whose scheduler is stuck keeps its lock while doing nothing. A lease must be
renewed by the scheduler loop itself, so a stuck or dead leader loses it after exactly
``lease_ttl`` seconds — a takeover time the operator chooses and can measure. Every
time comparison uses the database's clock (``clock_timestamp()``), so replica clock
skew does not matter.

Heartbeats say which replicas are alive; a run left ``running`` by a replica whose
heartbeat expired is marked ``interrupted`` (never re-run blindly), like after a crash.

After a database outage every heartbeat has expired, the live peers' included: they could
not renew either. So a replica judges orphans only once it has itself renewed without a
gap for ``lease_ttl`` (on the database clock), which gives every live peer three renewal
rounds to show it is alive again. A peer's result that still loses a race (its run was
interrupted meanwhile) is refused by the guarded ``finish_run`` and audited, never applied.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection, and_, delete, func, or_, select, update

from aiopsd.models import RunStatus
from aiopsd.store import tables as t
from aiopsd.store.audit import AuditChain
from aiopsd.store.state import StateStore

LEADER = "leader"


@dataclass(frozen=True)
class LeaseState:
    leader: bool
    holder: str
    expires_at: float
    changed: bool  # the holder changed in this call (we just took over, or someone else did)
    db_now: float


def db_now(conn: Connection) -> float:
    if conn.dialect.name == "postgresql":
        return float(conn.execute(select(func.extract("epoch", func.clock_timestamp()))).scalar_one())
    return time.time()


class Membership:
    """One replica's view of the lease and heartbeat tables."""

    def __init__(self, store: StateStore, name: str, ttl: float) -> None:
        self.store, self.name, self.ttl = store, name, ttl
        self.started_at = time.time()
        self._holder = ""
        # Database time of our last successful renewal, and since when we renewed without a gap.
        self._last_renewal: float | None = None
        self.connected_since: float | None = None

    def renew(self) -> LeaseState:
        """Heartbeat, then take or keep the leader lease if it is free, expired or ours."""
        with self.store.write() as conn:
            now = db_now(conn)
            ins = self.store.insert(t.replicas).values(
                name=self.name, started_at=self.started_at, heartbeat_at=now, expires_at=now + self.ttl
            )
            conn.execute(
                ins.on_conflict_do_update(
                    index_elements=["name"], set_={"heartbeat_at": now, "expires_at": now + self.ttl}
                )
            )
            conn.execute(
                self.store.insert(t.leases)
                .values(name=LEADER, holder=self.name, acquired_at=now, expires_at=now + self.ttl)
                .on_conflict_do_nothing(index_elements=["name"])
            )
            q = select(t.leases).where(t.leases.c.name == LEADER)
            if conn.dialect.name == "postgresql":
                q = q.with_for_update()
            row = conn.execute(q).one()
            holder, expires = row.holder, row.expires_at
            if row.holder == self.name or row.expires_at < now:
                values = {"holder": self.name, "expires_at": now + self.ttl}
                if row.holder != self.name:
                    values["acquired_at"] = now
                conn.execute(update(t.leases).where(t.leases.c.name == LEADER).values(**values))
                holder, expires = self.name, now + self.ttl
        if self._last_renewal is None or now - self._last_renewal > self.ttl:
            self.connected_since = now  # first renewal, or back after an outage (ours or the database's)
        self._last_renewal = now
        changed = holder != self._holder
        self._holder = holder
        return LeaseState(leader=holder == self.name, holder=holder, expires_at=expires, changed=changed, db_now=now)

    def leave(self) -> None:
        """On a clean stop: hand the lease back at once and drop our heartbeat."""
        with self.store.write() as conn:
            conn.execute(delete(t.leases).where(and_(t.leases.c.name == LEADER, t.leases.c.holder == self.name)))
            conn.execute(delete(t.replicas).where(t.replicas.c.name == self.name))

    def interrupt_orphans(self) -> list[tuple[int, str]]:
        """Mark ``interrupted`` the running runs whose owner has no live heartbeat; return (id, owner).

        Nothing is judged until this replica has renewed without a gap for ``ttl`` (see the
        module docstring): right after a start or an outage, expired heartbeats prove nothing.
        """
        with self.store.write() as conn:
            now = db_now(conn)
            if self.connected_since is None or now - self.connected_since < self.ttl:
                return []
            alive = select(t.replicas.c.name).where(t.replicas.c.expires_at >= now)
            cond = and_(
                t.action_runs.c.status == str(RunStatus.RUNNING),
                or_(t.action_runs.c.owner.is_(None), t.action_runs.c.owner.not_in(alive)),
            )
            why = "the replica running this action stopped answering (heartbeat expired); it was not re-run"
            rows = [
                (int(r.id), str(r.owner))
                for r in conn.execute(
                    update(t.action_runs)
                    .where(cond)
                    .values(status=str(RunStatus.INTERRUPTED), finished_at=now, error=why)
                    .returning(t.action_runs.c.id, t.action_runs.c.owner)
                )
            ]
            audit = AuditChain(conn, self.store.dialect)
            for run_id, owner in sorted(rows):
                audit.append("run_interrupted", now, {"run_id": run_id, "owner": owner, "reason": why, "by": self.name})
            conn.execute(delete(t.replicas).where(t.replicas.c.expires_at < now - 3600))
        return rows

    def replicas(self) -> list[dict[str, object]]:
        with self.store.read() as conn:
            now = db_now(conn)
            lease = conn.execute(select(t.leases).where(t.leases.c.name == LEADER)).first()
            leader = lease.holder if lease is not None and lease.expires_at >= now else None
            return [
                {
                    "name": r.name,
                    "alive": r.expires_at >= now,
                    "leader": r.name == leader,
                    "heartbeat_age_seconds": round(now - r.heartbeat_at, 3),
                }
                for r in conn.execute(select(t.replicas).order_by(t.replicas.c.name))
            ]
