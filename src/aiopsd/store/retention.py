"""Retention: delete what is older than ``retention``, keep what is still in use.

What goes, in one transaction, for a cutoff ``now - keep``:

- findings no longer firing, resolved before the cutoff, none of whose runs is unfinished;
- decisions decided before the cutoff whose finding is gone, unless their run is unfinished;
- finished runs whose decision is gone (a run that is not finished is never deleted), and the
  verifications of runs that are gone (so min_success reads the outcomes within retention);
- alerts received before the cutoff whose finding is gone;
- audit entries before the cutoff, with the chain anchored at the first entry kept
  (see :func:`aiopsd.store.audit.prune`), and one ``pruned`` entry saying what went.

A firing finding keeps its whole history (its decisions make it act at most once).
``keep`` is never shorter than what the guards look back on (cooldowns, rate windows,
circuit breaker resets, on_resolved): the daemon raises it to
:func:`aiopsd.engine.history.retention_floor`, so pruning can never make a rule act
again or exceed a budget. Run directories on this replica's disk
(``state_dir/runs/ID-ATTEMPT``) older than the cutoff are removed unless their run
is still unfinished.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import and_, delete, exists, not_, or_, select

from aiopsd.models import FindingStatus, RunStatus
from aiopsd.store import tables as t
from aiopsd.store.audit import AuditChain
from aiopsd.store.audit import prune as prune_audit
from aiopsd.store.state import StateStore

logger = logging.getLogger(__name__)

# How often the daemon prunes (seconds).
PRUNE_INTERVAL = 3600.0
UNFINISHED = [str(s) for s in RunStatus if not s.finished]


@dataclass(frozen=True)
class PruneResult:
    cutoff: float
    alerts: int
    findings: int
    decisions: int
    runs: int
    audit_entries: int
    audit_starts_at: int

    @property
    def total(self) -> int:
        return self.alerts + self.findings + self.decisions + self.runs + self.audit_entries


def prune(store: StateStore, now: datetime, keep: float) -> PruneResult:
    """Delete everything older than ``now - keep`` that nothing still needs (see the module docstring)."""
    cutoff = now.timestamp() - keep
    f, d, r, a = t.findings.c, t.decisions.c, t.action_runs.c, t.alerts.c
    unfinished_run_of = exists().where(and_(r.decision_id == d.id, r.status.in_(UNFINISHED)))
    with store.write() as conn:
        busy_findings = select(d.finding_id).where(unfinished_run_of)
        n_findings = conn.execute(
            delete(t.findings).where(
                and_(f.status != str(FindingStatus.FIRING), f.resolved_at < cutoff, f.id.not_in(busy_findings))
            )
        ).rowcount
        finding_gone = not_(exists().where(f.id == d.finding_id))
        n_decisions = conn.execute(
            delete(t.decisions).where(and_(d.decided_at < cutoff, finding_gone, not_(unfinished_run_of)))
        ).rowcount
        n_runs = conn.execute(
            delete(t.action_runs).where(and_(r.status.not_in(UNFINISHED), not_(exists().where(d.id == r.decision_id))))
        ).rowcount
        v = t.verifications.c
        conn.execute(delete(t.verifications).where(not_(exists().where(r.id == v.run_id))))
        n_alerts = conn.execute(
            delete(t.alerts).where(
                and_(a.received_at < cutoff, or_(a.finding_id.is_(None), not_(exists().where(f.id == a.finding_id))))
            )
        ).rowcount
        n_audit, starts_at = prune_audit(conn, store.dialect, cutoff, now.timestamp())
        result = PruneResult(
            cutoff=cutoff,
            alerts=n_alerts or 0,
            findings=n_findings or 0,
            decisions=n_decisions or 0,
            runs=n_runs or 0,
            audit_entries=n_audit,
            audit_starts_at=starts_at,
        )
        if result.total:
            AuditChain(conn, store.dialect).append("pruned", now.timestamp(), asdict(result))
    return result


def prune_run_dirs(runs_dir: Path, store: StateStore, now: datetime, keep: float) -> int:
    """Remove this replica's run directories older than the cutoff whose run is finished or gone."""
    if not runs_dir.is_dir():
        return 0
    cutoff = now.timestamp() - keep
    with store.read() as conn:
        live = {
            int(i)
            for i in conn.execute(select(t.action_runs.c.id).where(t.action_runs.c.status.in_(UNFINISHED))).scalars()
        }
    removed = 0
    for path in runs_dir.iterdir():
        run_id = path.name.split("-", 1)[0]
        if not (path.is_dir() and run_id.isdigit()) or int(run_id) in live:
            continue
        try:
            if path.stat().st_mtime >= cutoff:
                continue
        except OSError:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed
