"""Read models for the API, the status page and /metrics: counts, recent alerts, the audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from aiopsd.models import FindingStatus
from aiopsd.store import rows
from aiopsd.store import tables as t
from aiopsd.store.db import Database


class QueriesStore(Database):
    def counts(self) -> dict[str, Any]:
        with self.read() as conn:
            alerts = conn.execute(select(func.count()).select_from(t.alerts)).scalar_one()
            findings: dict[str, int] = dict(
                conn.execute(select(t.findings.c.status, func.count()).group_by(t.findings.c.status)).all()
            )
            runs: dict[str, int] = dict(
                conn.execute(select(t.action_runs.c.status, func.count()).group_by(t.action_runs.c.status)).all()
            )
            decisions: dict[str, int] = dict(
                conn.execute(select(t.decisions.c.outcome, func.count()).group_by(t.decisions.c.outcome)).all()
            )
        return {"alerts": alerts, "findings": findings, "runs": runs, "decisions": decisions}

    def firing_by_kind(self) -> dict[str, int]:
        with self.read() as conn:
            return {
                str(k): int(n)
                for k, n in conn.execute(
                    select(t.findings.c.kind, func.count())
                    .where(t.findings.c.status == str(FindingStatus.FIRING))
                    .group_by(t.findings.c.kind)
                ).all()
            }

    def list_alerts(self, *, limit: int = 100) -> list[dict[str, Any]]:
        q = select(t.alerts).order_by(t.alerts.c.id.desc()).limit(limit)
        with self.read() as conn:
            return [rows.alert(r) for r in conn.execute(q)]

    def audit_entries(self, *, limit: int = 100) -> list[dict[str, Any]]:
        q = select(t.audit_log).order_by(t.audit_log.c.seq.desc()).limit(limit)
        with self.read() as conn:
            return [rows.audit_entry(r) for r in conn.execute(q)]
