"""Action runs: a persisted state machine, claimed by one process, finished or retried only by its owner.

``pending`` → (``awaiting_approval``) → ``running`` → ``succeeded`` | ``failed`` | ``timed_out``
| ``canceled`` | ``interrupted``. Every transition is audited in its own transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, or_, select, text, update

from aiopsd.models import ActionRun, RunStatus
from aiopsd.store import rows
from aiopsd.store import tables as t
from aiopsd.store.audit import AuditChain
from aiopsd.store.rows import ts
from aiopsd.store.verifications import VerificationsStore, open_verification

logger = logging.getLogger(__name__)

# Arbitrary constant shared by every replica: serialises run claims across replicas.
_CLAIM_LOCK = 0x41_10_95_C1
_WAITING = [str(RunStatus.PENDING), str(RunStatus.AWAITING_APPROVAL)]


@dataclass(frozen=True)
class Claim:
    """A run this process now owns, with its execution bounds."""

    run: ActionRun
    timeout: float
    max_attempts: int
    retry_backoff: float


def cancel_for_finding(conn: Connection, audit: AuditChain, finding_id: str, at: float, why: str) -> int:
    """Cancel the finding's runs that have not started, in the caller's transaction."""
    decisions = select(t.decisions.c.id).where(t.decisions.c.finding_id == finding_id)
    waiting = and_(t.action_runs.c.decision_id.in_(decisions), t.action_runs.c.status.in_(_WAITING))
    ids = [int(r.id) for r in conn.execute(select(t.action_runs.c.id).where(waiting))]
    if not ids:
        return 0
    conn.execute(
        update(t.action_runs)
        .where(and_(waiting, t.action_runs.c.id.in_(ids)))
        .values(status=str(RunStatus.CANCELED), finished_at=at, error=why)
    )
    for run_id in ids:
        audit.append("run_canceled", at, {"run_id": run_id, "finding_id": finding_id, "reason": why})
    return len(ids)


def _owned(run_id: int, owner: str | None) -> Any:
    cond = and_(t.action_runs.c.id == run_id, t.action_runs.c.status == str(RunStatus.RUNNING))
    return cond if owner is None else and_(cond, t.action_runs.c.owner == owner)


def _audit_lost_race(
    conn: Connection, audit: AuditChain, run_id: int, owner: str | None, at: float, result: Mapping[str, Any]
) -> None:
    row = conn.execute(
        select(t.action_runs.c.status, t.action_runs.c.owner).where(t.action_runs.c.id == run_id)
    ).first()
    now_status, now_owner = (None, None) if row is None else (row.status, row.owner)
    logger.warning(
        "action %d: result %s not recorded: the run is now %s (owner %s), not running as %s",
        run_id,
        result.get("status"),
        now_status or "gone",
        now_owner or "-",
        owner or "any",
    )
    audit.append(
        "run_result_rejected",
        at,
        {"run_id": run_id, "by": owner, "result": dict(result), "run_status": now_status, "run_owner": now_owner},
    )


class RunsStore(VerificationsStore):
    def claim_runnable(
        self,
        now: datetime,
        *,
        limit: int,
        owner: str,
        busy_targets: frozenset[str] = frozenset(),
        rule_limits: Mapping[str, int] | None = None,
    ) -> list[Claim]:
        """Move up to ``limit`` due pending runs to running.

        A run whose targets overlap a running run's targets waits (per-target lock), and so
        does a run whose rule already has ``rule_limits[rule]`` runs running (per-rule concurrency).
        PostgreSQL replicas claim with FOR UPDATE SKIP LOCKED, so each run goes to one.
        """
        if limit <= 0:
            return []
        out: list[Claim] = []
        with self.write() as conn:
            if self.dialect == "postgresql":
                # Replicas claim one at a time, so the per-target lock below sees every claim
                # committed before ours; SKIP LOCKED still passes over rows another writer holds.
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CLAIM_LOCK})
            running_targets = set(busy_targets)
            per_rule: dict[str, int] = {}
            for r in conn.execute(
                select(t.action_runs.c.targets, t.action_runs.c.rule).where(
                    t.action_runs.c.status == str(RunStatus.RUNNING)
                )
            ):
                running_targets.update(r.targets or ())
                per_rule[r.rule] = per_rule.get(r.rule, 0) + 1
            audit = AuditChain(conn, self.dialect)
            for row in self._due_runs(conn, now):
                if len(out) >= limit:
                    break
                targets = set(row.targets or ())
                if targets & running_targets:
                    continue
                cap = (rule_limits or {}).get(row.rule)
                if cap is not None and per_rule.get(row.rule, 0) >= cap:
                    continue
                running_targets |= targets
                per_rule[row.rule] = per_rule.get(row.rule, 0) + 1
                conn.execute(
                    update(t.action_runs)
                    .where(and_(t.action_runs.c.id == row.id, t.action_runs.c.status == str(RunStatus.PENDING)))
                    .values(status=str(RunStatus.RUNNING), started_at=ts(now), owner=owner)
                )
                audit.append(
                    "run_started",
                    ts(now),
                    {
                        "run_id": row.id,
                        "rule": row.rule,
                        "attempt": row.attempt,
                        "targets": list(targets),
                        "dry_run": row.dry_run,
                        "owner": owner,
                    },
                )
                claimed = rows.run(row).model_copy(update={"status": RunStatus.RUNNING, "started_at": now})
                out.append(Claim(claimed, row.timeout, row.max_attempts, row.retry_backoff))
        return out

    def _due_runs(self, conn: Connection, now: datetime) -> Iterator[Any]:
        """Every due pending run, oldest first, read page by page (keyset on not_before, id).

        The caller stops as soon as it has claimed enough, so a short queue costs one page;
        a long queue of runs whose targets are busy is paged through instead of starving the
        runs behind it (head-of-line blocking).
        """
        c = t.action_runs.c
        base = (
            select(t.action_runs)
            .where(and_(c.status == str(RunStatus.PENDING), c.not_before <= ts(now)))
            .order_by(c.not_before, c.id)
        )
        after: tuple[float, int] | None = None
        page = 64
        while True:
            q = (
                base
                if after is None
                else base.where(or_(c.not_before > after[0], and_(c.not_before == after[0], c.id > after[1])))
            )
            q = q.limit(page)
            if self.dialect == "postgresql":
                q = q.with_for_update(skip_locked=True)
            found = conn.execute(q).all()
            yield from found
            if len(found) < page:
                return
            after = (float(found[-1].not_before), int(found[-1].id))
            page = min(page * 2, 1024)

    def finish_run(
        self,
        run_id: int,
        status: RunStatus,
        *,
        finished_at: datetime,
        rc: int | None,
        output: str,
        error: str = "",
        artifact_dir: str | None = None,
        owner: str | None = None,
    ) -> bool:
        """Record a run's result if it is still ``running`` (and, given ``owner``, still ours).

        Returns False when the run moved on meanwhile (e.g. marked ``interrupted`` by the leader
        during an outage): the result is then not applied, and the lost race is audited.
        """
        with self.write() as conn:
            stmt = (
                update(t.action_runs)
                .where(_owned(run_id, owner))
                .values(
                    status=str(status),
                    finished_at=ts(finished_at),
                    rc=rc,
                    output=output,
                    error=error,
                    artifact_dir=artifact_dir,
                )
                .returning(t.action_runs.c.id)
            )
            audit = AuditChain(conn, self.dialect)
            if conn.execute(stmt).first() is None:
                _audit_lost_race(
                    conn, audit, run_id, owner, ts(finished_at), {"status": str(status), "rc": rc, "error": error}
                )
                return False
            audit.append(
                "run_finished", ts(finished_at), {"run_id": run_id, "status": str(status), "rc": rc, "error": error}
            )
            if status == RunStatus.SUCCEEDED:
                open_verification(conn, audit, run_id, ts(finished_at))
        return True

    def retry_run(
        self, run_id: int, *, not_before: datetime, output: str, error: str, owner: str | None = None
    ) -> bool:
        """Put a failed attempt back in the queue for a later attempt (guarded like :meth:`finish_run`)."""
        with self.write() as conn:
            stmt = (
                update(t.action_runs)
                .where(_owned(run_id, owner))
                .values(
                    status=str(RunStatus.PENDING),
                    attempt=t.action_runs.c.attempt + 1,
                    not_before=ts(not_before),
                    output=output,
                    error=error,
                    started_at=None,
                    owner=None,
                )
                .returning(t.action_runs.c.id)
            )
            audit = AuditChain(conn, self.dialect)
            if conn.execute(stmt).first() is None:
                _audit_lost_race(conn, audit, run_id, owner, time.time(), {"status": "retry", "error": error})
                return False
            audit.append("run_retry", time.time(), {"run_id": run_id, "not_before": ts(not_before), "error": error})
        return True

    def mark_interrupted(self, now: datetime, *, slot: str | None = None, keep: str | None = None) -> int:
        """Runs left ``running`` by a dead process become ``interrupted`` (never re-run blindly).

        Without ``slot`` (one daemon on its own store) every running run is such a leftover.
        With ``slot`` (``hostname:pid``, several replicas on one database) only the runs of an
        earlier process start in the same slot are: a restarted container's previous life.
        ``keep`` is the caller's own identity, never touched.
        """
        c = t.action_runs.c
        cond = c.status == str(RunStatus.RUNNING)
        if slot is not None:
            cond = and_(cond, or_(c.owner == slot, c.owner.startswith(f"{slot}:", autoescape=True)))
        if keep is not None:
            cond = and_(cond, or_(c.owner.is_(None), c.owner != keep))
        why = "the daemon stopped while this action was running; it was not re-run"
        with self.write() as conn:
            done = [
                (int(r.id), r.owner)
                for r in conn.execute(
                    update(t.action_runs)
                    .where(cond)
                    .values(status=str(RunStatus.INTERRUPTED), finished_at=ts(now), error=why)
                    .returning(c.id, c.owner)
                )
            ]
            audit = AuditChain(conn, self.dialect)
            for run_id, owner in sorted(done):
                audit.append("run_interrupted", ts(now), {"run_id": run_id, "owner": owner, "reason": why})
            return len(done)

    def approve_run(self, run_id: int, now: datetime, *, by: str = "") -> ActionRun | None:
        with self.write() as conn:
            res = conn.execute(
                update(t.action_runs)
                .where(and_(t.action_runs.c.id == run_id, t.action_runs.c.status == str(RunStatus.AWAITING_APPROVAL)))
                .values(status=str(RunStatus.PENDING), not_before=ts(now))
            )
            if res.rowcount != 1:
                return None
            AuditChain(conn, self.dialect).append("run_approved", ts(now), {"run_id": run_id, "by": by})
        return self.get_run(run_id)

    def get_run(self, run_id: int) -> ActionRun | None:
        with self.read() as conn:
            row = conn.execute(select(t.action_runs).where(t.action_runs.c.id == run_id)).first()
        return None if row is None else self._with_verifications([rows.run(row)])[0]

    def _with_verifications(self, runs: list[ActionRun]) -> list[ActionRun]:
        """The runs with their verification, where they have one."""
        found = self.verifications_for([r.id for r in runs])
        return [r.model_copy(update={"verification": found[r.id]}) if r.id in found else r for r in runs]

    def runs_for_decisions(self, decision_ids: Sequence[str]) -> list[ActionRun]:
        if not decision_ids:
            return []
        q = select(t.action_runs).where(t.action_runs.c.decision_id.in_(list(decision_ids)))
        with self.read() as conn:
            found = [rows.run(r) for r in conn.execute(q.order_by(t.action_runs.c.id))]
        return self._with_verifications(found)

    def list_runs(self, *, limit: int = 100, status: str | None = None) -> list[ActionRun]:
        q = select(t.action_runs).order_by(t.action_runs.c.id.desc()).limit(limit)
        if status:
            q = q.where(t.action_runs.c.status == status)
        with self.read() as conn:
            found = [rows.run(r) for r in conn.execute(q)]
        return self._with_verifications(found)
