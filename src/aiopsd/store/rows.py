"""Rows to models and back: the one place that knows how each table's columns map to a model.

Times are epoch seconds (float) in every table and aware UTC datetimes everywhere else.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiopsd.models import MAX_SIGHTINGS, ActionRun, Decision, Finding, FindingKind, FindingStatus, Outcome, RunStatus


def ts(value: datetime) -> float:
    return value.timestamp()


def utc(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def utc_or_none(value: float | None) -> datetime | None:
    return None if value is None else utc(value)


def finding(row: Any) -> Finding:
    return Finding(
        id=row.id,
        kind=FindingKind(row.kind),
        source=row.source,
        labels=row.labels,
        score=row.score,
        status=FindingStatus(row.status),
        starts_at=utc(row.starts_at),
        last_seen=utc(row.last_seen),
        summary=row.summary or "",
        details=row.details or {},
        sightings=tuple(row.sightings or ()),
        resolution=row.resolution,
    )


def finding_values(f: Finding) -> dict[str, Any]:
    """The row of a finding seen for the first time."""
    resolved = f.status == FindingStatus.RESOLVED
    return {
        "id": f.id,
        "kind": str(f.kind),
        "source": f.source,
        "labels": f.labels,
        "score": f.score,
        "status": str(f.status),
        "starts_at": ts(f.starts_at),
        "last_seen": ts(f.last_seen),
        "resolved_at": ts(f.last_seen) if resolved else None,
        "resolution": (f.resolution or "recovered") if resolved else None,
        "summary": f.summary,
        "details": f.details,
        "sightings": list(f.sightings[-MAX_SIGHTINGS:]),
        "occurrences": max(1, len(f.sightings)),
    }


def decision(row: Any) -> Decision:
    return Decision(
        id=row.id,
        rule=row.rule,
        finding_id=row.finding_id,
        outcome=Outcome(row.outcome),
        code=row.code,
        reason=row.reason,
        action_kind=row.action_kind,
        action=row.action or {},
        targets=tuple(row.targets or ()),
        dry_run=row.dry_run,
        require_approval=row.require_approval,
        decided_at=utc(row.decided_at),
    )


def run(row: Any) -> ActionRun:
    return ActionRun(
        id=row.id,
        decision_id=row.decision_id,
        rule=row.rule,
        kind=row.kind,
        targets=tuple(row.targets or ()),
        status=RunStatus(row.status),
        attempt=row.attempt,
        dry_run=row.dry_run,
        created_at=utc(row.created_at),
        started_at=utc_or_none(row.started_at),
        finished_at=utc_or_none(row.finished_at),
        rc=row.rc,
        output=row.output or "",
        error=row.error or "",
        artifact_dir=row.artifact_dir,
        action=row.action or {},
    )


def source(row: Any) -> dict[str, Any]:
    return {
        "name": row.name,
        "kind": row.kind,
        "up": row.up,
        "last_ok": utc_or_none(row.last_ok),
        "last_error_at": utc_or_none(row.last_error_at),
        "error": row.error,
        "lag_seconds": row.lag,
        "updated_at": utc(row.updated_at),
    }


def alert(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "fingerprint": row.fingerprint,
        "status": row.status,
        "starts_at": row.starts_at,
        "alertname": row.alertname,
        "labels": row.labels,
        "received_at": utc(row.received_at),
        "finding_id": row.finding_id,
    }


def audit_entry(row: Any) -> dict[str, Any]:
    return {"seq": row.seq, "at": utc(row.at), "kind": row.kind, "event": json.loads(row.event), "hash": row.hash}
