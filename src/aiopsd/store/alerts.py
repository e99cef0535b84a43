"""Alert intake: Alertmanager deliveries become delivery rows and firing *episodes* (findings).

Identity. A fingerprint has at most one open episode. While that episode's finding
fires, every firing delivery of the fingerprint belongs to it, whatever its
``startsAt`` (HA Prometheus or Alertmanager pairs report different ones): one
fingerprint firing is one finding, hence one action per rule. A firing delivery of
a fingerprint whose episode has resolved (or never existed) opens the next episode,
with the finding id ``stable_id("alert", fingerprint, "episode", n)``, even when its
``startsAt`` is the old one (Alertmanager re-fires with the same ``startsAt`` after
an auto-resolve). A delivery already stored for the same episode (fingerprint,
status, startsAt, finding) is a redelivery: a no-op.

Concurrency. The fingerprints' episode rows are locked (``FOR UPDATE``, in
fingerprint order) on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises writers.
So two replicas receiving the same alert agree on one episode.

Expiry. An episode fires until its resolve arrives, its latest ``endsAt`` passes
(when the sender gives one), or it has not been delivered for ``alerts.max_age``:
then it resolves with resolution ``expired``, which is not recovery (no
``on_resolved``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Connection, and_, bindparam, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from aiopsd.models import Finding, FindingKind, FindingStatus, stable_id
from aiopsd.store import tables as t
from aiopsd.store.audit import AuditChain
from aiopsd.store.findings import resolve, upsert
from aiopsd.store.rows import finding_values

if TYPE_CHECKING:
    from aiopsd.store.state import StateStore

logger = logging.getLogger(__name__)

RECOVERED = "recovered"
NO_DATA = "no_data"
EXPIRED = "expired"


class AlertDelivery(Protocol):
    """One delivered alert, as the store keeps it (``aiopsd.sources.alertmanager.IncomingAlert`` is one).

    ``finding`` maps the alert to the finding of its firing episode; the store picks the id and
    the episode number (see the module doc).
    """

    @property
    def fingerprint(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def starts_at(self) -> str: ...

    @property
    def ends_at(self) -> str | None: ...

    @property
    def labels(self) -> Mapping[str, str]: ...

    @property
    def annotations(self) -> Mapping[str, str]: ...

    @property
    def generator_url(self) -> str | None: ...

    @property
    def ends_at_epoch(self) -> float | None:
        """endsAt in epoch seconds when the sender gave a real end after startsAt, else None."""

    def finding(self, finding_id: str, received_at: float, episode: int) -> Finding: ...


@dataclass(frozen=True)
class AlertBatch:
    """The alerts of one webhook request, as handed to :meth:`StateStore.accept_alert_batches`."""

    alerts: Sequence[AlertDelivery]
    received_at: float
    receiver: str | None
    group_key: str | None


@dataclass(frozen=True)
class AcceptResult:
    # Deliveries stored (new for their episode); the rest were redeliveries.
    accepted: int
    duplicates: int
    # Firing alerts that opened a finding, i.e. a new episode (the findings counter's "alert" kind).
    opened: int = 0


@dataclass
class _Episode:
    episode: int
    finding_id: str | None
    ends_at: float | None
    changed: bool = False


@dataclass
class _Pending:
    """What a group of batches writes, collected first so the writes go out in bulk."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    opened: dict[str, tuple[Finding, float]] = field(default_factory=dict)
    seen_again: list[Finding] = field(default_factory=list)
    resolved: list[tuple[str, float]] = field(default_factory=list)


def episode_finding_id(fingerprint: str, episode: int) -> str:
    return stable_id("alert", fingerprint, "episode", episode)


_EPISODES = (
    select(
        t.alert_episodes.c.fingerprint,
        t.alert_episodes.c.episode,
        t.alert_episodes.c.finding_id,
        t.alert_episodes.c.ends_at,
    )
    .where(t.alert_episodes.c.fingerprint.in_(bindparam("fps", expanding=True)))
    .order_by(t.alert_episodes.c.fingerprint)
)
_STATUSES = select(t.findings.c.id, t.findings.c.status).where(t.findings.c.id.in_(bindparam("ids", expanding=True)))
_DELIVERIES = select(t.alerts.c.fingerprint, t.alerts.c.status, t.alerts.c.starts_at, t.alerts.c.finding_id).where(
    and_(
        t.alerts.c.fingerprint.in_(bindparam("fps", expanding=True)),
        or_(t.alerts.c.finding_id.in_(bindparam("ids", expanding=True)), t.alerts.c.finding_id.is_(None)),
    )
)
_CHUNK = 500
_FIRING, _RESOLVED = str(FindingStatus.FIRING), str(FindingStatus.RESOLVED)


def accept(
    store: StateStore,
    conn: Connection,
    alerts: Sequence[AlertDelivery],
    *,
    received_at: float,
    receiver: str | None,
    group_key: str | None,
) -> AcceptResult:
    """Store one webhook request's alerts in the caller's write transaction (see the module doc)."""
    return accept_batches(store, conn, [AlertBatch(alerts, received_at, receiver, group_key)])[0]


def accept_batches(
    store: StateStore,
    conn: Connection,
    batches: Sequence[AlertBatch],
    on_settled: Callable[[int, AcceptResult], None] | None = None,
) -> list[AcceptResult]:
    """Store several requests' alerts in the caller's write transaction (group commit).

    The result is the same as accepting the batches one after the other, in order, in
    that transaction: the episodes, finding statuses and stored deliveries are looked up
    once for every fingerprint of the group and then carried in memory from one batch
    to the next, and the writes go out in bulk at the end. So a group of N requests
    costs the statements of one, not N times them.

    ``on_settled(i, result)`` is called, before anything is written, for each batch
    that is nothing but redeliveries of what was already committed before this
    transaction (no earlier batch of the group wrote any of its fingerprints): such a
    request writes nothing, its alerts are durable already, and its answer need not
    wait for this commit. The lookups run under the write lock (SQLite's ``BEGIN
    IMMEDIATE``, PostgreSQL's ``FOR UPDATE`` on the episodes), so that state is the
    latest committed one and cannot change under the group.
    """
    audit = AuditChain(conn, store.dialect, buffered=True)
    fps = sorted({a.fingerprint for b in batches for a in b.alerts})
    episodes = _lock_episodes(store, conn, fps)
    fids = [e.finding_id for e in episodes.values() if e.finding_id is not None]
    status: dict[str, str] = {}
    seen: set[tuple[str, str, str, str | None]] = set()
    for k in range(0, len(fids), _CHUNK):
        status.update((r.id, r.status) for r in conn.execute(_STATUSES, {"ids": fids[k : k + _CHUNK]}))
    for k in range(0, len(fps), _CHUNK):
        seen.update(tuple(r) for r in conn.execute(_DELIVERIES, {"fps": fps[k : k + _CHUNK], "ids": fids}))
    out = _Pending()
    written: set[str] = set()  # fingerprints an earlier batch of this group wrote
    results = []
    for i, b in enumerate(batches):
        result = _accept_one(b, episodes, status, seen, out, audit)
        results.append(result)
        mine = {a.fingerprint for a in b.alerts}
        if result.accepted:
            written |= mine
        elif on_settled is not None and not mine & written:
            on_settled(i, result)
    _write(store, conn, audit, out, episodes)
    return results


def _accept_one(
    batch: AlertBatch,
    episodes: dict[str, _Episode],
    status: dict[str, str],
    seen: set[tuple[str, str, str, str | None]],
    out: _Pending,
    audit: AuditChain,
) -> AcceptResult:
    """One batch against the group's in-memory state; its writes are added to ``out``."""
    received_at = batch.received_at
    accepted = opened = 0
    for a in batch.alerts:
        ep = episodes.setdefault(a.fingerprint, _Episode(0, None, None))
        is_open = ep.finding_id is not None and status.get(ep.finding_id) == _FIRING
        if a.status == "firing" and not is_open:
            ep.episode += 1
            ep.finding_id = episode_finding_id(a.fingerprint, ep.episode)
            ep.changed = True
            status[ep.finding_id] = _FIRING
        key = (a.fingerprint, a.status, a.starts_at, ep.finding_id)
        if key in seen:
            continue
        seen.add(key)
        fid = ep.finding_id
        accepted += 1
        alertname = a.labels.get("alertname")
        out.rows.append(
            {
                "fingerprint": a.fingerprint,
                "status": a.status,
                "starts_at": a.starts_at,
                "ends_at": a.ends_at,
                "alertname": alertname,
                "labels": dict(a.labels),
                "annotations": dict(a.annotations),
                "generator_url": a.generator_url,
                "receiver": batch.receiver,
                "group_key": batch.group_key,
                "received_at": received_at,
                "finding_id": fid,
            }
        )
        audit.append(
            "alert_accepted",
            received_at,
            {
                "fingerprint": a.fingerprint,
                "status": a.status,
                "starts_at": a.starts_at,
                "alertname": alertname,
                "finding_id": fid,
            },
        )
        assert fid is not None or a.status != "firing"
        if a.status == "firing" and fid is not None:
            ep.ends_at, ep.changed = a.ends_at_epoch, True
            finding = a.finding(fid, received_at, ep.episode)
            if fid in out.opened or is_open:
                out.seen_again.append(finding)
            else:
                out.opened[fid] = (finding, received_at)
                opened += 1
        elif is_open and fid is not None:
            status[fid] = _RESOLVED
            out.resolved.append((fid, received_at))
    return AcceptResult(accepted=accepted, duplicates=len(batch.alerts) - accepted, opened=opened)


def _lock_episodes(store: StateStore, conn: Connection, fps: list[str]) -> dict[str, _Episode]:
    """The fingerprints' current episodes; on PostgreSQL their rows stay locked until commit."""
    q = _EPISODES
    if store.dialect == "postgresql":
        # Make sure every row exists, so FOR UPDATE has something to lock for a first delivery too.
        conn.execute(
            store.insert(t.alert_episodes).on_conflict_do_nothing(index_elements=["fingerprint"]),
            [{"fingerprint": fp, "episode": 0, "finding_id": None, "ends_at": None} for fp in fps],
        )
        q = q.with_for_update()
    out: dict[str, _Episode] = {}
    for k in range(0, len(fps), _CHUNK):
        for r in conn.execute(q, {"fps": fps[k : k + _CHUNK]}):
            out[r.fingerprint] = _Episode(r.episode, r.finding_id, r.ends_at)
    return out


@functools.cache
def _inserts(dialect: str) -> tuple[Any, Any]:
    """The dialect's delivery insert and episode upsert, built once (building them per group showed in py-spy)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    deliveries = insert(t.alerts).on_conflict_do_nothing(
        index_elements=["fingerprint", "status", "starts_at", "finding_id"]
    )
    stmt = insert(t.alert_episodes)
    episodes = stmt.on_conflict_do_update(
        index_elements=["fingerprint"],
        set_={
            "episode": stmt.excluded.episode,
            "finding_id": stmt.excluded.finding_id,
            "ends_at": stmt.excluded.ends_at,
        },
    )
    return deliveries, episodes


def _write(
    store: StateStore,
    conn: Connection,
    audit: AuditChain,
    out: _Pending,
    episodes: Mapping[str, _Episode],
) -> None:
    inserts = _inserts(store.dialect)
    if out.rows:
        conn.execute(inserts[0], out.rows)
    if out.opened:
        conn.execute(t.findings.insert(), [finding_values(f) for f, _ in out.opened.values()])
        for f, at in out.opened.values():
            audit.append(
                "finding_opened",
                at,
                {
                    "finding_id": f.id,
                    "kind": str(f.kind),
                    "source": f.source,
                    "labels": f.labels,
                    "status": str(f.status),
                    "episode": f.details.get("episode"),
                },
            )
    for f in out.seen_again:
        upsert(conn, audit, f)
    changed = [
        {"fingerprint": fp, "episode": e.episode, "finding_id": e.finding_id, "ends_at": e.ends_at}
        for fp, e in episodes.items()
        if e.changed
    ]
    if changed:
        conn.execute(inserts[1], changed)
    for fid, at in out.resolved:
        resolve(conn, audit, fid, at, why="the alert resolved", resolution=RECOVERED)
    audit.flush()


def expire(store: StateStore, conn: Connection, now: float, max_age: float) -> list[str]:
    """Resolve (``expired``) the firing alert findings whose endsAt passed or that were not
    delivered for ``max_age`` seconds; returns their ids."""
    f, e = t.findings, t.alert_episodes
    firing = and_(f.c.kind == str(FindingKind.ALERT), f.c.status == str(FindingStatus.FIRING))
    old = select(f.c.id, f.c.last_seen, f.c.summary).where(and_(firing, f.c.last_seen < now - max_age))
    ended = (
        select(f.c.id, f.c.last_seen, f.c.summary)
        .join(e, e.c.finding_id == f.c.id)
        .where(and_(firing, e.c.ends_at.is_not(None), e.c.ends_at < now))
    )
    due = {r.id: r for q in (old, ended) for r in conn.execute(q)}
    if not due:
        return []
    audit = AuditChain(conn, store.dialect)
    for fid, r in due.items():
        why = (
            f"the alert was not delivered again for {now - r.last_seen:.0f}s (alerts.max_age "
            f"{max_age:.0f}s) or its endsAt passed, and no resolve arrived"
        )
        logger.warning("alert finding %s (%s) expired: %s", fid, r.summary, why)
        resolve(conn, audit, fid, now, why=f"the alert expired ({why})", resolution=EXPIRED)
    return list(due)
