"""The past the guards look back on, as plain records, and the operator's circuit resets.

The store only answers a :class:`aiopsd.models.HistoryQuery`; what the records mean
(cooldowns, budgets, the circuit rule) is the engine's business (``engine/history.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select

from aiopsd.models import DecisionRecord, FindingStatus, History, HistoryQuery, Outcome, RunRecord, RunStatus
from aiopsd.store import tables as t
from aiopsd.store.audit import AuditChain
from aiopsd.store.db import Database
from aiopsd.store.rows import ts, utc
from aiopsd.store.verifications import read_outcomes


class HistoryStore(Database):
    def history(self, query: HistoryQuery) -> History:
        """Decisions on relevant findings, recent act decisions, and the runs the breakers read."""
        d, r, f = t.decisions.c, t.action_runs.c, t.findings.c
        relevant = select(f.id).where(
            or_(f.status == str(FindingStatus.FIRING), f.resolved_at >= ts(query.relevant_since))
        )
        acts = and_(d.rule.in_(query.rules), d.decided_at >= ts(query.acts_since))
        if query.global_since is not None:
            acts = or_(acts, d.decided_at >= ts(query.global_since))
        cols = select(d.id, d.rule, d.finding_id, d.code, d.outcome, d.targets, d.decided_at, r.started_at).select_from(
            t.decisions.outerjoin(t.action_runs, r.decision_id == d.id)
        )
        found: dict[str, Any] = {}
        runs: list[RunRecord] = []
        with self.read() as conn:
            for cond in (d.finding_id.in_(relevant), and_(d.outcome == str(Outcome.ACT), acts)):
                found.update((row.id, row) for row in conn.execute(cols.where(cond)))
            resets: dict[str, float] = dict(
                conn.execute(select(t.circuit_resets.c.rule, t.circuit_resets.c.reset_at)).tuples().all()
            )
            restores: dict[str, float] = dict(
                conn.execute(select(t.rule_restores.c.rule, t.rule_restores.c.restored_at)).tuples().all()
            )
            outcomes = read_outcomes(conn, relevant, query.outcome_depth, restores)
            for rule, depth in query.circuit_depth.items():
                runs += [
                    RunRecord(rule=rule, status=RunStatus(row.status), finished_at=utc(row.finished_at))
                    for row in conn.execute(
                        select(r.status, r.finished_at)
                        .where(
                            and_(
                                r.rule == rule,
                                r.finished_at.is_not(None),
                                r.finished_at > resets.get(rule, -1.0),
                                r.dry_run.is_(False),
                            )
                        )
                        .order_by(r.finished_at.desc())
                        .limit(depth)
                    )
                ]
        decisions = [
            DecisionRecord(
                rule=row.rule,
                finding_id=row.finding_id,
                code=row.code,
                outcome=Outcome(row.outcome),
                targets=tuple(row.targets or ()),
                decided_at=utc(row.decided_at),
                started=row.started_at is not None,
            )
            for row in found.values()
        ]
        return History(
            decisions=decisions,
            runs=runs,
            circuit_resets={rule: utc(at) for rule, at in resets.items()},
            outcomes=outcomes,
            restores={rule: utc(at) for rule, at in restores.items()},
        )

    def reset_circuit(self, rule: str, now: datetime, *, by: str) -> None:
        """Close a rule's circuit: failures finished before now no longer count."""
        with self.write() as conn:
            stmt = self.insert(t.circuit_resets).values(rule=rule, reset_at=ts(now), by=by)
            conn.execute(stmt.on_conflict_do_update(index_elements=["rule"], set_={"reset_at": ts(now), "by": by}))
            AuditChain(conn, self.dialect).append("circuit_reset", ts(now), {"rule": rule, "by": by})
