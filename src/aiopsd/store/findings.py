"""Findings: one row per incident, merged as it is seen again, resolved once.

A resolved finding stays resolved (a new incident gets a new id), and resolving
one cancels its runs that have not started, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, select, update

from aiopsd.models import RESOLVED_WINDOW, Finding, FindingKind, FindingStatus, merge_sighting
from aiopsd.store import rows
from aiopsd.store import tables as t
from aiopsd.store.audit import AuditChain
from aiopsd.store.db import Database
from aiopsd.store.rows import ts
from aiopsd.store.runs import cancel_for_finding

_BY_ID = select(t.findings).where(t.findings.c.id == bindparam("fid"))


def upsert(conn: Connection, audit: AuditChain, f: Finding) -> None:
    """Insert a new finding or merge a sighting into the stored one, in the caller's transaction."""
    row = conn.execute(_BY_ID, {"fid": f.id}).first()
    if row is None:
        conn.execute(t.findings.insert(), rows.finding_values(f))
        audit.append(
            "finding_opened",
            ts(f.last_seen),
            {"finding_id": f.id, "kind": str(f.kind), "source": f.source, "labels": f.labels, "status": str(f.status)},
        )
        return
    merged = merge_sighting(rows.finding(row), f)
    if merged is None:
        return  # a resolved incident stays resolved; a new one gets a new id
    values: dict[str, Any] = {
        # last_seen from the float columns, exact (merged.last_seen is the same time, rounded to a microsecond).
        "last_seen": max(row.last_seen, ts(f.last_seen)),
        "score": merged.score,
        "sightings": list(merged.sightings),
        "occurrences": row.occurrences + len(set(f.sightings) - set(row.sightings or ())),
        "details": merged.details,
        "summary": merged.summary,
        "status": str(merged.status),
    }
    if f.status == FindingStatus.RESOLVED:
        values["resolved_at"] = ts(f.last_seen)
        values["resolution"] = merged.resolution
    conn.execute(update(t.findings).where(t.findings.c.id == f.id).values(**values))
    if f.status == FindingStatus.RESOLVED and row.status == FindingStatus.FIRING:
        audit.append(
            "finding_resolved", ts(f.last_seen), {"finding_id": f.id, "resolution": f.resolution or "recovered"}
        )
        cancel_for_finding(
            conn, audit, f.id, ts(f.last_seen), "canceled: the finding resolved before the action started"
        )


def resolve(
    conn: Connection, audit: AuditChain, finding_id: str, at: float, *, why: str, resolution: str = "recovered"
) -> None:
    """Resolve a firing finding and cancel its runs that have not started, in the caller's transaction."""
    res = conn.execute(
        update(t.findings)
        .where(and_(t.findings.c.id == finding_id, t.findings.c.status == str(FindingStatus.FIRING)))
        .values(status=str(FindingStatus.RESOLVED), resolved_at=at, last_seen=at, resolution=resolution)
    )
    if res.rowcount != 1:
        return
    audit.append("finding_resolved", at, {"finding_id": finding_id, "resolution": resolution})
    cancel_for_finding(conn, audit, finding_id, at, f"canceled: {why} before the action started")


class FindingsStore(Database):
    def upsert_findings(self, items: Sequence[Finding]) -> None:
        if not items:
            return
        with self.write() as conn:
            audit = AuditChain(conn, self.dialect)
            for f in items:
                upsert(conn, audit, f)

    def active_findings(self, kind: FindingKind | None = None, source: str | None = None) -> list[Finding]:
        q = select(t.findings).where(t.findings.c.status == str(FindingStatus.FIRING))
        if kind is not None:
            q = q.where(t.findings.c.kind == str(kind))
        if source is not None:
            q = q.where(t.findings.c.source == source)
        with self.read() as conn:
            return [rows.finding(r) for r in conn.execute(q.order_by(t.findings.c.starts_at))]

    def list_findings(self, *, limit: int = 100, status: str | None = None, kind: str | None = None) -> list[Finding]:
        q = select(t.findings).order_by(t.findings.c.last_seen.desc()).limit(limit)
        if status:
            q = q.where(t.findings.c.status == status)
        if kind:
            q = q.where(t.findings.c.kind == kind)
        with self.read() as conn:
            return [rows.finding(r) for r in conn.execute(q)]

    def get_finding(self, finding_id: str) -> Finding | None:
        with self.read() as conn:
            row = conn.execute(select(t.findings).where(t.findings.c.id == finding_id)).first()
        return None if row is None else rows.finding(row)

    def recently_resolved(self, now: datetime, within: float = RESOLVED_WINDOW) -> list[Finding]:
        """Findings resolved in the last ``within`` seconds that some rule acted on (for on_resolved)."""
        acted = select(t.decisions.c.finding_id).where(t.decisions.c.code == "act")
        q = (
            select(t.findings)
            .where(
                and_(
                    t.findings.c.status == str(FindingStatus.RESOLVED),
                    t.findings.c.resolved_at >= ts(now) - within,
                    t.findings.c.id.in_(acted),
                )
            )
            .order_by(t.findings.c.starts_at)
        )
        with self.read() as conn:
            return [rows.finding(r) for r in conn.execute(q)]
