"""Decisions: recorded once each (idempotent by id), with one queued run per new act decision."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

from sqlalchemy import Connection, select

from aiopsd.models import Decision, FindingStatus, Outcome, RunStatus, SkipReason, stable_id
from aiopsd.store import rows
from aiopsd.store import tables as t
from aiopsd.store.audit import AuditChain
from aiopsd.store.db import Database
from aiopsd.store.rows import ts

logger = logging.getLogger(__name__)


class RunBounds(Protocol):
    """What a rule's guards say about its runs (the engine's ``Guards`` has these)."""

    @property
    def timeout(self) -> float: ...
    @property
    def retries(self) -> int: ...
    @property
    def retry_backoff(self) -> float: ...


class GuardedRule(Protocol):
    """A rule as the store needs it: its guards (the engine's ``Rule`` fits)."""

    @property
    def guards(self) -> RunBounds: ...


class DecisionsStore(Database):
    def record_decisions(self, items: Sequence[Decision], rules: Mapping[str, GuardedRule]) -> list[Decision]:
        """Record decisions (idempotent by id) and queue one run per new act decision (``rules`` by name).

        Returns the decisions as stored, new ones only: an act whose finding resolved meanwhile is
        the ``resolved_before_act`` skip it became; duplicates of recorded ids are left out.
        """
        stored: list[Decision] = []
        if not items:
            return stored
        with self.write() as conn:
            audit = AuditChain(conn, self.dialect)
            for item in items:
                d = self._still_firing(conn, item) if item.outcome == Outcome.ACT and item.code == "act" else item
                stmt = (
                    self.insert(t.decisions)
                    .values(
                        id=d.id,
                        rule=d.rule,
                        finding_id=d.finding_id,
                        outcome=str(d.outcome),
                        code=d.code,
                        reason=d.reason,
                        action_kind=d.action_kind,
                        action=d.action,
                        targets=list(d.targets),
                        dry_run=d.dry_run,
                        require_approval=d.require_approval,
                        decided_at=ts(d.decided_at),
                    )
                    .on_conflict_do_nothing(index_elements=["id"])
                )
                if conn.execute(stmt.returning(t.decisions.c.id)).first() is None:
                    continue
                stored.append(d)
                audit.append(
                    "decision",
                    ts(d.decided_at),
                    {
                        "decision_id": d.id,
                        "rule": d.rule,
                        "finding_id": d.finding_id,
                        "outcome": str(d.outcome),
                        "code": d.code,
                        "reason": d.reason,
                        "targets": list(d.targets),
                        "dry_run": d.dry_run,
                    },
                )
                if d.outcome != Outcome.ACT:
                    continue
                guards = rules[d.rule].guards
                status = RunStatus.AWAITING_APPROVAL if d.require_approval else RunStatus.PENDING
                res = conn.execute(
                    t.action_runs.insert().values(
                        decision_id=d.id,
                        rule=d.rule,
                        kind=d.action_kind or "",
                        targets=list(d.targets),
                        status=str(status),
                        attempt=1,
                        dry_run=d.dry_run,
                        action=d.action,
                        timeout=guards.timeout,
                        max_attempts=1 + guards.retries,
                        retry_backoff=guards.retry_backoff,
                        created_at=ts(d.decided_at),
                        not_before=ts(d.decided_at),
                        output="",
                        error="",
                        verify=d.verify,
                    )
                )
                key = res.inserted_primary_key
                assert key is not None
                audit.append(
                    "run_created", ts(d.decided_at), {"run_id": int(key[0]), "decision_id": d.id, "status": str(status)}
                )
        return stored

    def _still_firing(self, conn: Connection, d: Decision) -> Decision:
        """The act decision, or a ``resolved_before_act`` skip when its finding stopped firing after
        the engine read it. Reads the finding in this write transaction (locked on PostgreSQL), so a
        resolve commits either before (no run) or after (its cancel finds the pending run)."""
        q = select(t.findings.c.status, t.findings.c.resolution).where(t.findings.c.id == d.finding_id)
        if self.dialect == "postgresql":
            q = q.with_for_update()
        row = conn.execute(q).first()
        if row is not None and row.status == str(FindingStatus.FIRING):
            return d
        why = f"resolved ({row.resolution or 'recovered'})" if row is not None else "gone from the store"
        logger.warning(
            "rule %s on finding %s: not acting: the finding %s while the decision was made", d.rule, d.finding_id, why
        )
        return d.model_copy(
            update={
                "id": stable_id(d.rule, d.finding_id, SkipReason.RESOLVED_BEFORE_ACT),
                "outcome": Outcome.SKIP,
                "code": SkipReason.RESOLVED_BEFORE_ACT,
                "reason": f"the finding {why} while this decision was being made: no action",
            }
        )

    def get_decision(self, decision_id: str) -> Decision | None:
        found = self.list_decisions(limit=1, decision_id=decision_id)
        return found[0] if found else None

    def list_decisions(
        self,
        *,
        limit: int = 100,
        outcome: str | None = None,
        finding_id: str | None = None,
        decision_id: str | None = None,
    ) -> list[Decision]:
        q = select(t.decisions).order_by(t.decisions.c.decided_at.desc()).limit(limit)
        if decision_id:
            q = q.where(t.decisions.c.id == decision_id)
        if outcome:
            q = q.where(t.decisions.c.outcome == outcome)
        if finding_id:
            q = q.where(t.decisions.c.finding_id == finding_id)
        with self.read() as conn:
            return [rows.decision(r) for r in conn.execute(q)]
