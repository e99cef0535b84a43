"""The typed, frozen models that flow between stages.

``Series`` / ``Window`` -> ``Finding`` -> ``Decision`` -> ``ActionRun``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Frozen(BaseModel):
    """The one base of every model aiopsd defines: frozen, unknown fields refused.

    A model of someone else's payload (Alertmanager's webhook and silences, a newer
    daemon's status JSON) keeps this base and sets ``extra="ignore"`` in its own
    ``model_config`` (pydantic merges it), so what differs is said where it differs.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


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


_SOURCE_FINDINGS = {
    SourceKind.PROMETHEUS: FindingKind.ANOMALY,
    SourceKind.PREDICTION_LOG: FindingKind.DRIFT,
    SourceKind.ALERTMANAGER: FindingKind.ALERT,
}
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


_FINISHED = {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELED, RunStatus.INTERRUPTED}


class Outcome(StrEnum):
    """What the engine decided for one (rule, finding)."""

    ACT = "act"
    SKIP = "skip"


class SkipReason(StrEnum):
    """Why a decision is a skip: the ``code`` of a skip :class:`Decision`, with what it means to a person.

    ``ON_RESOLVED_*`` are the same guards holding back a rule's ``on_resolved`` action.
    """

    SOURCE_DOWN = "source_down"
    STALE = "stale"
    MAINTENANCE = "maintenance"
    SILENCED = "silenced"
    SILENCES_UNKNOWN = "silences_unknown"
    DROPPED_AFTER_MAINTENANCE = "dropped_after_maintenance"
    CIRCUIT_OPEN = "circuit_open"
    NO_TARGETS = "no_targets"
    MAX_HOSTS = "max_hosts"
    COOLDOWN = "cooldown"
    RATE_BUDGET = "rate_budget"
    GLOBAL_RATE_BUDGET = "global_rate_budget"
    UNSAFE_TARGET = "unsafe_target"
    TEMPLATE_ERROR = "template_error"
    EVALUATION_ERROR = "evaluation_error"
    RESOLVED_BEFORE_ACT = "resolved_before_act"
    ON_RESOLVED_NO_DATA = "on_resolved_no_data"
    ON_RESOLVED_SOURCE_DOWN = "on_resolved_source_down"
    ON_RESOLVED_STALE = "on_resolved_stale"
    ON_RESOLVED_CIRCUIT_OPEN = "on_resolved_circuit_open"
    ON_RESOLVED_NO_TARGETS = "on_resolved_no_targets"
    ON_RESOLVED_MAX_HOSTS = "on_resolved_max_hosts"
    ON_RESOLVED_GLOBAL_RATE_BUDGET = "on_resolved_global_rate_budget"
    ON_RESOLVED_TEMPLATE_ERROR = "on_resolved_template_error"
    ON_RESOLVED_UNSAFE_TARGET = "on_resolved_unsafe_target"
    # Closed loop (engine/followups.py): a verify check that cannot be rendered safely, a finding whose
    # remediation was not verified, and the guards holding back an ``on_not_verified`` escalation.
    VERIFY_TEMPLATE_ERROR = "verify_template_error"
    NOT_VERIFIED_BEFORE = "not_verified_before"
    ESCALATE_CIRCUIT_OPEN = "escalate_circuit_open"
    ESCALATE_NO_TARGETS = "escalate_no_targets"
    ESCALATE_MAX_HOSTS = "escalate_max_hosts"
    ESCALATE_GLOBAL_RATE_BUDGET = "escalate_global_rate_budget"
    ESCALATE_TEMPLATE_ERROR = "escalate_template_error"
    ESCALATE_UNSAFE_TARGET = "escalate_unsafe_target"

    @property
    def label(self) -> str:
        """The words the status page shows for this reason."""
        return _SKIP_LABELS[self]

    def on_resolved(self) -> SkipReason:
        """The same guard holding back an ``on_resolved`` action."""
        return self if self.value.startswith("on_resolved_") else SkipReason(f"on_resolved_{self.value}")

    def escalate(self) -> SkipReason:
        """The same guard holding back an ``on_not_verified`` escalation."""
        return self if self.value.startswith("escalate_") else SkipReason(f"escalate_{self.value}")


_SKIP_LABELS: dict[SkipReason, str] = {
    SkipReason.SOURCE_DOWN: "source down",
    SkipReason.STALE: "stale data",
    SkipReason.MAINTENANCE: "maintenance window",
    SkipReason.SILENCED: "silenced in Alertmanager",
    SkipReason.SILENCES_UNKNOWN: "silences unknown",
    SkipReason.DROPPED_AFTER_MAINTENANCE: "dropped after maintenance",
    SkipReason.CIRCUIT_OPEN: "circuit open",
    SkipReason.NO_TARGETS: "no targets",
    SkipReason.MAX_HOSTS: "too many hosts",
    SkipReason.COOLDOWN: "cooldown",
    SkipReason.RATE_BUDGET: "rate budget spent",
    SkipReason.GLOBAL_RATE_BUDGET: "global rate budget spent",
    SkipReason.UNSAFE_TARGET: "unsafe target (a label is a host pattern, not a host)",
    SkipReason.TEMPLATE_ERROR: "template error",
    SkipReason.EVALUATION_ERROR: "evaluation error",
    SkipReason.RESOLVED_BEFORE_ACT: "resolved before acting",
    SkipReason.ON_RESOLVED_NO_DATA: "on resolve: not a recovery (no data)",
    SkipReason.ON_RESOLVED_SOURCE_DOWN: "on resolve: source down",
    SkipReason.ON_RESOLVED_STALE: "on resolve: stale data",
    SkipReason.ON_RESOLVED_CIRCUIT_OPEN: "on resolve: circuit open",
    SkipReason.ON_RESOLVED_NO_TARGETS: "on resolve: no targets",
    SkipReason.ON_RESOLVED_MAX_HOSTS: "on resolve: too many hosts",
    SkipReason.ON_RESOLVED_GLOBAL_RATE_BUDGET: "on resolve: global rate budget spent",
    SkipReason.ON_RESOLVED_TEMPLATE_ERROR: "on resolve: template error",
    SkipReason.ON_RESOLVED_UNSAFE_TARGET: "unsafe target (a label is a host pattern, not a host)",
    SkipReason.VERIFY_TEMPLATE_ERROR: "verify check cannot be rendered safely",
    SkipReason.NOT_VERIFIED_BEFORE: "not verified before: not acting again on this finding",
    SkipReason.ESCALATE_CIRCUIT_OPEN: "escalation: circuit open",
    SkipReason.ESCALATE_NO_TARGETS: "escalation: no targets",
    SkipReason.ESCALATE_MAX_HOSTS: "escalation: too many hosts",
    SkipReason.ESCALATE_GLOBAL_RATE_BUDGET: "escalation: global rate budget spent",
    SkipReason.ESCALATE_TEMPLATE_ERROR: "escalation: template error",
    SkipReason.ESCALATE_UNSAFE_TARGET: "escalation: unsafe target (a label is a host pattern, not a host)",
}


class VerifyOutcome(StrEnum):
    """How a succeeded run's ``verify:`` check ended (``pending`` while it is still being checked)."""

    PENDING = "pending"
    VERIFIED = "verified"
    NOT_VERIFIED = "not_verified"
    # The check could not be judged (source down, stale data, query error): missing data is never a verdict.
    UNKNOWN = "unknown"


class Verification(Frozen):
    """The verification of one succeeded run, as the run views show it."""

    outcome: VerifyOutcome
    check: str
    reason: str = ""
    due_at: datetime
    deadline: datetime
    decided_at: datetime | None = None
    last_checked_at: datetime | None = None


# ---- history: what the guards look back on (the store reads it, engine/history.py folds it) ----
# How long after a finding resolves its on_resolved action may still be decided (seconds).
RESOLVED_WINDOW = 86400.0


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A recorded decision, as the guards look back on it."""

    rule: str
    finding_id: str
    code: str
    outcome: Outcome
    targets: tuple[str, ...]
    decided_at: datetime
    # Its action run has started (an on_resolved action follows only an action that happened).
    started: bool = False


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A finished action run, as a rule's circuit breaker counts it."""

    rule: str
    status: RunStatus
    finished_at: datetime
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class OutcomeRecord:
    """A decided verification (verified / not_verified / unknown), as demotion and escalation read it."""

    rule: str
    finding_id: str
    run_id: int
    outcome: VerifyOutcome
    decided_at: datetime
    # The original run's targets and rendered action (an on_not_verified rollback gets its vars).
    targets: tuple[str, ...] = ()
    action: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """Which part of the past a rule set's guards look back on (built by engine/history.py)."""

    rules: tuple[str, ...]
    # Decisions on findings firing, or resolved since then (already decided, on_resolved).
    relevant_since: datetime
    # Act decisions of these rules since then (cooldowns, per-rule rate budgets).
    acts_since: datetime
    # Act decisions of every rule since then (the global rate budget), None without one.
    global_since: datetime | None
    # rule -> how many of its latest finished runs its circuit breaker reads.
    circuit_depth: Mapping[str, int] = field(default_factory=dict)
    # rule -> how many of its latest verified / not_verified outcomes its min_success reads.
    outcome_depth: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class History:
    """The store's answer to a :class:`HistoryQuery` (or a replay's memory)."""

    decisions: Sequence[DecisionRecord] = ()
    # Finished runs that are not dry runs, after each rule's last circuit reset, newest first.
    runs: Sequence[RunRecord] = ()
    # rule -> when an operator last closed its circuit (runs finished before no longer count).
    circuit_resets: Mapping[str, datetime] = field(default_factory=dict)
    # Not-verified outcomes on relevant findings, and each rule's latest outcomes after its last restore.
    outcomes: Sequence[OutcomeRecord] = ()
    # rule -> when an operator last restored it after a demotion (outcomes before no longer count).
    restores: Mapping[str, datetime] = field(default_factory=dict)


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


# A finding keeps at most this many sighting times (enough for any `for: {count: N}`).
MAX_SIGHTINGS = 64


def merge_sighting(known: Finding, seen: Finding) -> Finding | None:
    """``known`` after the same incident was ``seen`` again; None when it stays as it is.

    A resolved incident stays resolved (a new one gets a new id). Otherwise the latest
    sighting gives the status and summary, last_seen and the score only grow, sightings
    and details accumulate, and a resolve says why (default ``recovered``); identity
    (kind, source, labels, starts_at) stays the first sighting's. The store merges with
    this, and so does ``aiopsd rules test``.
    """
    if known.status == FindingStatus.RESOLVED and seen.status == FindingStatus.FIRING:
        return None
    resolved = seen.status == FindingStatus.RESOLVED
    return known.model_copy(
        update={
            "last_seen": max(known.last_seen, seen.last_seen),
            "score": max(known.score, seen.score),
            "sightings": tuple(sorted({*known.sightings, *seen.sightings})[-MAX_SIGHTINGS:]),
            # Details accumulate (a drift report rendered when the episode opened stays linked).
            "details": {**known.details, **seen.details},
            "summary": seen.summary,
            "status": seen.status,
            "resolution": (seen.resolution or "recovered") if resolved else known.resolution,
        }
    )


class Decision(Frozen):
    """What the engine decided for one rule and one finding, and why."""

    id: str
    rule: str
    finding_id: str
    outcome: Outcome
    # Machine-readable reason: "act" / "on_resolved", or the guard that skipped (a SkipReason value).
    code: str
    reason: str
    action_kind: str | None = None
    action: dict[str, Any] = Field(default_factory=dict)
    targets: tuple[str, ...] = ()
    dry_run: bool = False
    require_approval: bool = False
    decided_at: datetime
    # The rendered ``verify:`` plan of a new act (after, within, check); stored with its run, not read back.
    verify: dict[str, Any] | None = None


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
    # Whether the run fixed the problem (rules with ``verify:``; None when not verified).
    verification: Verification | None = None
