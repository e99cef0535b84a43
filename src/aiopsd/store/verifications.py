"""Verifications of succeeded runs (closed loop), their outcomes, and operators' rule restores.

A verification is opened in the transaction that records a run's success (:func:`open_verification`),
so a restart resumes it; the leader's verifier (daemon/verifier.py) checks due ones and decides
each once: ``verified``, ``not_verified`` or ``unknown``, audited with a demotion if it causes one.
What the outcomes mean (escalation, demotion) is the engine's business (engine/verify.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, select, update

from aiopsd.models import OutcomeRecord, Verification, VerifyOutcome
from aiopsd.store import tables as t
from aiopsd.store.audit import AuditChain
from aiopsd.store.db import Database
from aiopsd.store.rows import ts, utc, utc_or_none

_JUDGED = [str(VerifyOutcome.VERIFIED), str(VerifyOutcome.NOT_VERIFIED)]


@dataclass(frozen=True)
class PendingVerification:
    """A verification still being checked, as the verifier reads it."""

    run_id: int
    rule: str
    finding_id: str
    plan: Mapping[str, Any]
    due_at: float
    deadline: float
    last_check: str | None
    last_checked_at: float | None
    reason: str
    progress: Mapping[str, Any]


def describe(plan: Mapping[str, Any]) -> str:
    check = plan.get("check")
    if isinstance(check, dict) and "promql" in check:
        return f"promql: {check['promql']}"
    if isinstance(check, dict) and "score_below" in check:
        return f"score below 1 for {check['score_below'].get('points')} points"
    return "finding resolved"


def open_verification(conn: Connection, audit: AuditChain, run_id: int, at: float) -> None:
    """In the caller's transaction: a succeeded run with a verify plan (not a dry run) starts being verified."""
    r, d = t.action_runs.c, t.decisions.c
    row = conn.execute(
        select(r.rule, r.verify, r.dry_run, d.finding_id)
        .select_from(t.action_runs.join(t.decisions, d.id == r.decision_id))
        .where(r.id == run_id)
    ).first()
    if row is None or not row.verify or row.dry_run:
        return
    plan = dict(row.verify)
    due, deadline = at + float(plan.get("after", 0.0)), at + float(plan["within"])
    conn.execute(
        t.verifications.insert().values(
            run_id=run_id,
            rule=row.rule,
            finding_id=row.finding_id,
            plan=plan,
            due_at=due,
            deadline=deadline,
            status=str(VerifyOutcome.PENDING),
            reason="",
            progress={},
        )
    )
    audit.append(
        "verification_opened",
        at,
        {"run_id": run_id, "rule": row.rule, "finding_id": row.finding_id, "check": describe(plan), "due_at": due},
    )


def read_outcomes(
    conn: Connection, relevant: Any, depth: Mapping[str, int], restores: Mapping[str, float]
) -> list[OutcomeRecord]:
    """Not-verified outcomes on ``relevant`` findings, and each rule's latest ``depth`` judged outcomes."""
    v, r = t.verifications.c, t.action_runs.c
    cols = select(v.run_id, v.rule, v.finding_id, v.status, v.decided_at, r.targets, r.action).select_from(
        t.verifications.join(t.action_runs, r.id == v.run_id)
    )
    found: dict[int, Any] = {}
    cond = and_(v.status == str(VerifyOutcome.NOT_VERIFIED), v.finding_id.in_(relevant))
    found.update((row.run_id, row) for row in conn.execute(cols.where(cond)))
    for rule, n in depth.items():
        q = cols.where(and_(v.rule == rule, v.status.in_(_JUDGED), v.decided_at > restores.get(rule, -1.0))).order_by(
            v.decided_at.desc(), v.run_id.desc()
        )
        found.update((row.run_id, row) for row in conn.execute(q.limit(n)))
    return [
        OutcomeRecord(
            rule=row.rule,
            finding_id=row.finding_id,
            run_id=int(row.run_id),
            outcome=VerifyOutcome(row.status),
            decided_at=utc(row.decided_at),
            targets=tuple(row.targets or ()),
            action=dict(row.action or {}),
        )
        for row in found.values()
    ]


def _view(row: Any) -> Verification:
    return Verification(
        outcome=VerifyOutcome(row.status),
        check=describe(row.plan or {}),
        reason=row.reason or "",
        due_at=utc(row.due_at),
        deadline=utc(row.deadline),
        decided_at=utc_or_none(row.decided_at),
        last_checked_at=utc_or_none(row.last_checked_at),
    )


class VerificationsStore(Database):
    def due_verifications(self, now: datetime, *, limit: int = 200) -> list[PendingVerification]:
        """Pending verifications whose ``after`` has passed, oldest first."""
        v = t.verifications.c
        q = (
            select(t.verifications)
            .where(and_(v.status == str(VerifyOutcome.PENDING), v.due_at <= ts(now)))
            .order_by(v.due_at, v.run_id)
            .limit(limit)
        )
        with self.read() as conn:
            return [
                PendingVerification(
                    run_id=int(row.run_id),
                    rule=row.rule,
                    finding_id=row.finding_id,
                    plan=dict(row.plan or {}),
                    due_at=float(row.due_at),
                    deadline=float(row.deadline),
                    last_check=row.last_check,
                    last_checked_at=row.last_checked_at,
                    reason=row.reason or "",
                    progress=dict(row.progress or {}),
                )
                for row in conn.execute(q)
            ]

    def record_check(
        self, run_id: int, check: str, reason: str, at: datetime, progress: Mapping[str, Any] | None = None
    ) -> None:
        """The latest check of a pending verification (holds / fails / missing) and why."""
        values: dict[str, Any] = {"last_check": check, "last_checked_at": ts(at), "reason": reason}
        if progress is not None:
            values["progress"] = dict(progress)
        v = t.verifications.c
        with self.write() as conn:
            conn.execute(
                update(t.verifications)
                .where(and_(v.run_id == run_id, v.status == str(VerifyOutcome.PENDING)))
                .values(**values)
            )

    def decide_verification(
        self, run_id: int, outcome: VerifyOutcome, reason: str, at: datetime, *, demoted: str | None = None
    ) -> bool:
        """Decide a pending verification once (False when it was decided already), audited; with the
        demotion it causes, audited in the same transaction."""
        v = t.verifications.c
        with self.write() as conn:
            row = conn.execute(
                update(t.verifications)
                .where(and_(v.run_id == run_id, v.status == str(VerifyOutcome.PENDING)))
                .values(status=str(outcome), reason=reason, decided_at=ts(at))
                .returning(v.rule, v.finding_id)
            ).first()
            if row is None:
                return False
            audit = AuditChain(conn, self.dialect)
            event = {"run_id": run_id, "rule": row.rule, "finding_id": row.finding_id, "outcome": str(outcome)}
            audit.append("verification", ts(at), {**event, "reason": reason})
            if demoted is not None:
                audit.append("rule_demoted", ts(at), {"rule": row.rule, "run_id": run_id, "reason": demoted})
        return True

    def restore_rule(self, rule: str, now: datetime, *, by: str) -> None:
        """Give a demoted rule its autonomy back: outcomes decided before now no longer count."""
        with self.write() as conn:
            stmt = self.insert(t.rule_restores).values(rule=rule, restored_at=ts(now), by=by)
            conn.execute(stmt.on_conflict_do_update(index_elements=["rule"], set_={"restored_at": ts(now), "by": by}))
            AuditChain(conn, self.dialect).append("rule_restored", ts(now), {"rule": rule, "by": by})

    def verifications_for(self, run_ids: Sequence[int]) -> dict[int, Verification]:
        if not run_ids:
            return {}
        q = select(t.verifications).where(t.verifications.c.run_id.in_(list(run_ids)))
        with self.read() as conn:
            return {int(row.run_id): _view(row) for row in conn.execute(q)}

    def outcome_history(self, rule: str, *, limit: int = 20) -> list[tuple[int, VerifyOutcome, datetime]]:
        """A rule's latest decided outcomes (run id, outcome, when), newest first."""
        v = t.verifications.c
        q = (
            select(v.run_id, v.status, v.decided_at)
            .where(and_(v.rule == rule, v.decided_at.is_not(None)))
            .order_by(v.decided_at.desc(), v.run_id.desc())
            .limit(limit)
        )
        with self.read() as conn:
            return [(int(r.run_id), VerifyOutcome(r.status), utc(r.decided_at)) for r in conn.execute(q)]

    def rule_restores(self) -> dict[str, datetime]:
        with self.read() as conn:
            rows = conn.execute(select(t.rule_restores.c.rule, t.rule_restores.c.restored_at)).tuples().all()
        return {rule: utc(at) for rule, at in rows}
