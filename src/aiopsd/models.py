"""The typed, frozen models that flow between stages.

``Series`` / ``Window`` -> ``Finding`` -> ``Decision`` -> ``ActionRun``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FindingKind(StrEnum):
    ANOMALY = "anomaly"
    DRIFT = "drift"
    ALERT = "alert"


class SourceKind(StrEnum):
    """Where a finding's data came from; the kind of a source health row and of a status-page source."""

    PROMETHEUS = "prometheus"
    PREDICTION_LOG = "prediction_log"
    ALERTMANAGER = "alertmanager"

    @property
    def finding_kind(self) -> FindingKind:
        return _SOURCE_FINDINGS[self]

    @property
    def polled(self) -> bool:
        """Polled by the daemon (its health can be down), as opposed to pushed to it (webhooks)."""
        return self is not SourceKind.ALERTMANAGER


_SOURCE_FINDINGS = {SourceKind.PROMETHEUS: FindingKind.ANOMALY, SourceKind.PREDICTION_LOG: FindingKind.DRIFT,
                    SourceKind.ALERTMANAGER: FindingKind.ALERT}
# Findings judged from polled data: a "source down" fact holds back every rule on them.
POLLED_FINDING_KINDS = frozenset(k.finding_kind for k in SourceKind if k.polled)


class FindingStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class RunStatus(StrEnum):
    PENDING = "pending"
    AWAITING_APPROVAL = "awaiting_approval"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELED = "canceled"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        return self in _FINISHED


_FINISHED = {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELED,
             RunStatus.INTERRUPTED}


class Outcome(StrEnum):
    """What the engine decided for one (rule, finding)."""

    ACT = "act"
    SKIP = "skip"


def stable_id(*parts: object) -> str:
    """A short deterministic id from JSON-able parts (same input, same id, every process)."""
    raw = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def series_key(source: str, labels: dict[str, str]) -> str:
    """The identity of one watched series: the watch name and its label set."""
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{source}{{{inner}}}"


class Series(Frozen):
    """Points of one series from one poll (seconds since the epoch, float values)."""

    source: str
    labels: dict[str, str]
    timestamps: tuple[float, ...]
    values: tuple[float, ...]


class Finding(Frozen):
    """Something a source or detector saw that rules may act on.

    ``id`` is stable for one incident: re-delivering the same alert or re-seeing
    the same anomaly incident yields the same id, which is what makes decisions
    idempotent.
    """

    id: str
    kind: FindingKind
    source: str
    labels: dict[str, str] = Field(default_factory=dict)
    score: float = 1.0
    status: FindingStatus = FindingStatus.FIRING
    starts_at: datetime
    last_seen: datetime
    summary: str = ""
    details: dict[str, Any] = Field(default_factory=dict)
    # Epoch seconds of the latest sightings (bounded), for count-within-window rules.
    sightings: tuple[float, ...] = ()
    # Why a resolved finding resolved: "recovered" (the data or Alertmanager says so), "no_data"
    # (its series vanished) or "expired" (an alert whose resolve never came). Only recovery
    # triggers on_resolved. None while firing.
    resolution: str | None = None


class Decision(Frozen):
    """What the engine decided for one rule and one finding, and why."""

    id: str
    rule: str
    finding_id: str
    outcome: Outcome
    # Machine-readable reason: "act", or the guard that skipped ("cooldown", "source_down", ...).
    code: str
    reason: str
    action_kind: str | None = None
    action: dict[str, Any] = Field(default_factory=dict)
    targets: tuple[str, ...] = ()
    dry_run: bool = False
    require_approval: bool = False
    decided_at: datetime


class ActionRun(Frozen):
    """One execution of a decided action, a persisted state machine."""

    id: int
    decision_id: str
    rule: str
    kind: str
    targets: tuple[str, ...]
    status: RunStatus
    attempt: int = 1
    dry_run: bool = False
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    rc: int | None = None
    output: str = ""
    error: str = ""
    artifact_dir: str | None = None
    action: dict[str, Any] = Field(default_factory=dict)


ActionKind = Literal["playbook", "retrain", "silence", "notify"]
