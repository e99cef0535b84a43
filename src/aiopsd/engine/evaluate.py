"""``evaluate(findings, rules, state, now) -> decisions``: the pure heart of aiopsd.

No I/O and no clock: the daemon passes a snapshot of the store (:class:`EngineState`)
and the time. Every decision carries a reason a person can read, skips included.

Idempotency: an ``act`` decision has the id ``stable_id(rule, finding, "act")``, so
one finding never produces two actions for one rule, however often it is seen.
A skip is recorded once per reason and the finding stays eligible: if the guard
clears (cooldown over, source back) while the finding still fires, it acts then.

Firing only: a resolved finding is never acted on, except by a rule's ``on_resolved``
action, decided once (id ``stable_id(rule, finding, "on_resolved")``) and only when that
rule's action for the finding actually started.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiopsd.durations import format_duration
from aiopsd.engine.actions import ActionSpec, Skip
from aiopsd.engine.maintenance import MaintenanceWindow, covering
from aiopsd.engine.rules import ForCount, Match, RateBudget, Rule
from aiopsd.engine.silences import Silence, silencing
from aiopsd.engine.targets import UnsafeTarget
from aiopsd.engine.targets import render_targets as _render_hosts
from aiopsd.models import (
    POLLED_FINDING_KINDS,
    Decision,
    Finding,
    FindingKind,
    FindingStatus,
    Outcome,
    SkipReason,
    stable_id,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineState:
    """What the engine needs to know about the past, read from the store by the caller."""

    # (rule, finding id, reason code) already recorded; code "act" for an action.
    decided: frozenset[tuple[str, str, str]] = frozenset()
    # (rule, target) -> when the last action for that target was decided.
    last_action: Mapping[tuple[str, str], datetime] = field(default_factory=dict)
    # rule -> times of its recent act decisions (enough to cover its max_per_window).
    recent_actions: Mapping[str, Sequence[datetime]] = field(default_factory=dict)
    # rule -> why its circuit is open.
    open_circuits: Mapping[str, str] = field(default_factory=dict)
    # source name -> why it is down (Prometheus unreachable, query failing, ...).
    sources_down: Mapping[str, str] = field(default_factory=dict)
    global_dry_run: bool = False
    # The global rate budget (config actions.max_per_window) and the times of recent acts of all rules.
    global_budget: RateBudget | None = None
    global_recent: Sequence[datetime] = ()
    # (rule, finding id) whose act run has started (on_resolved follows only an action that happened).
    started: frozenset[tuple[str, str]] = frozenset()
    # Planned work (engine/maintenance.py, engine/silences.py): windows from the config and the CLI,
    # active Alertmanager silences, and why the silences could not be read (None: read, or not checked).
    maintenance: Sequence[MaintenanceWindow] = ()
    silences: Sequence[Silence] = ()
    silences_down: str | None = None


def matches(match: Match, finding: Finding) -> bool:
    if match.kind is not None and finding.kind != match.kind:
        return False
    if match.source is not None and finding.source != match.source:
        return False
    if match.min_score is not None and not finding.score >= match.min_score:
        return False
    return all(m.matches(finding.labels.get(k)) for k, m in match.matchers().items())


def _for_satisfied(rule: Rule, finding: Finding, now: datetime) -> bool:
    if isinstance(rule.for_, ForCount):
        since = now.timestamp() - rule.for_.window
        return sum(1 for t in finding.sightings if t >= since) >= rule.for_.count
    return (now - finding.starts_at).total_seconds() >= rule.for_


def template_context(finding: Finding) -> dict[str, Any]:
    return {
        "labels": dict(finding.labels),
        "finding": finding.model_dump(mode="json"),
        "kind": str(finding.kind),
        "source": finding.source,
        "score": finding.score,
    }


def render_targets(rule: Rule, finding: Finding) -> tuple[str, ...]:
    """The canonical hosts a rule's action would touch (raises UnsafeTarget for a pattern)."""
    return _render_hosts(rule.action.target_source(), template_context(finding))[0]


def _render(action_model: ActionSpec, finding: Finding) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Checked targets and the rendered action (with its ports and AWX limit bound in)."""
    return action_model.prepare(template_context(finding))


class _Batch:
    """Acts decided earlier in the same evaluate() call count against later guards."""

    def __init__(self) -> None:
        self.acts: list[tuple[str, tuple[str, ...], datetime]] = []

    def last_for(self, rule: str, target: str) -> datetime | None:
        times = [t for r, ts, t in self.acts if r == rule and target in (ts or ("*",))]  # no targets: "*"
        return max(times) if times else None

    def count(self, rule: str | None = None) -> int:
        return sum(1 for r, _, _ in self.acts if rule is None or r == rule)


def _guard_skip(
    rule: Rule, finding: Finding, targets: tuple[str, ...], state: EngineState, batch: _Batch, now: datetime
) -> Skip | None:
    """(code, reason) of the first guard that blocks, or None."""
    g = rule.guards
    if finding.kind in POLLED_FINDING_KINDS and finding.source in state.sources_down:
        return SkipReason.SOURCE_DOWN, f"source down: {finding.source}: {state.sources_down[finding.source]}"
    age = (now - finding.last_seen).total_seconds()
    if finding.kind != FindingKind.ALERT and age > g.stale_after:
        return SkipReason.STALE, (
            f"stale data: last seen {format_duration(age)} ago (stale_after {format_duration(g.stale_after)})"
        )
    planned = _planned_work_skip(rule, finding, state, now)
    if planned is not None:
        return planned
    if rule.name in state.open_circuits:
        return SkipReason.CIRCUIT_OPEN, f"circuit open: {state.open_circuits[rule.name]}"
    kind_skip = rule.action.check(targets, max_hosts=g.max_hosts)  # the kind's own: no_targets, max_hosts
    if kind_skip is not None:
        return kind_skip
    if g.cooldown > 0:
        for target in targets or ("*",):
            stored = state.last_action.get((rule.name, target))
            in_batch = batch.last_for(rule.name, target)
            last = max((t for t in (stored, in_batch) if t is not None), default=None)
            if last is not None and (now - last).total_seconds() < g.cooldown:
                left = g.cooldown - (now - last).total_seconds()
                return SkipReason.COOLDOWN, (
                    f"cooldown: last action on {target} at {last:%Y-%m-%d %H:%M:%S}Z, {format_duration(left)} left"
                )
    if g.max_per_window is not None:
        since = now - timedelta(seconds=g.max_per_window.window)
        used = sum(1 for t in state.recent_actions.get(rule.name, ()) if t > since)
        used += batch.count(rule.name)
        if used >= g.max_per_window.count:
            return SkipReason.RATE_BUDGET, (
                f"rate budget: {used} actions in the last "
                f"{format_duration(g.max_per_window.window)} "
                f"(max {g.max_per_window.count})"
            )
    return _global_budget_skip(state, batch, now)


# ---- planned work: maintenance windows and Alertmanager silences (issue 17) ----
PLANNED_WORK_CODES = (SkipReason.MAINTENANCE, SkipReason.SILENCED)


def _planned_work_skip(rule: Rule, finding: Finding, state: EngineState, now: datetime) -> Skip | None:
    """Skip while a maintenance window or an active silence covers the finding's labels.

    The skip is recorded once per code and the finding stays eligible, so it acts once the
    window ends if it still fires; with ``after_maintenance: drop`` it is dropped instead.
    Silences that could not be read are missing data: no action until they can be.
    """
    window = covering(state.maintenance, finding.labels, now)
    if window is not None:
        return SkipReason.MAINTENANCE, window.reason()
    silence = silencing(state.silences, finding.labels, now)
    if silence is not None:
        return SkipReason.SILENCED, f"silenced: {silence.describe()}"
    if state.silences_down is not None:
        return SkipReason.SILENCES_UNKNOWN, f"silences unknown: {state.silences_down}"
    if rule.after_maintenance == "drop" and any(
        (rule.name, finding.id, c) in state.decided for c in PLANNED_WORK_CODES
    ):
        return SkipReason.DROPPED_AFTER_MAINTENANCE, (
            "dropped: it fired during planned work and the rule says after_maintenance: drop"
        )
    return None


def _global_budget_skip(state: EngineState, batch: _Batch, now: datetime) -> Skip | None:
    budget = state.global_budget
    if budget is None:
        return None
    since = now - timedelta(seconds=budget.window)
    used = sum(1 for t in state.global_recent if t > since) + batch.count()
    if used >= budget.count:
        return SkipReason.GLOBAL_RATE_BUDGET, (
            f"global rate budget: {used} actions of all rules in the last "
            f"{format_duration(budget.window)} (actions.max_per_window "
            f"{budget.count})"
        )
    return None


def evaluate(findings: Sequence[Finding], rules: Sequence[Rule], state: EngineState, now: datetime) -> list[Decision]:
    """Decide, for every firing finding and every enabled rule it matches, act or skip (and why)."""
    batch = _Batch()
    out: list[Decision] = []
    ordered = sorted(findings, key=lambda f: (f.starts_at, f.id))
    for rule in rules:
        if not rule.enabled:
            continue
        for finding in ordered:
            try:
                decision = _evaluate_one(rule, finding, state, batch, now)
            except Exception as exc:  # one rule's failure must not stop the other rules or the tick
                logger.exception("rule %s on finding %s: evaluation failed", rule.name, finding.id)
                code = SkipReason.EVALUATION_ERROR
                decision = Decision(
                    id=stable_id(rule.name, finding.id, code),
                    rule=rule.name,
                    finding_id=finding.id,
                    outcome=Outcome.SKIP,
                    code=code,
                    reason=f"evaluation failed: {exc.__class__.__name__}: {exc}",
                    action_kind=rule.action.kind,
                    decided_at=now,
                )
            if decision is None or (rule.name, finding.id, decision.code) in state.decided:
                continue
            out.append(decision)
            if decision.outcome == Outcome.ACT:
                batch.acts.append((rule.name, decision.targets, now))
    return out


def _evaluate_one(rule: Rule, finding: Finding, state: EngineState, batch: _Batch, now: datetime) -> Decision | None:
    if finding.status == FindingStatus.RESOLVED:
        return _on_resolved(rule, finding, state, batch, now)
    if finding.status != FindingStatus.FIRING or not matches(rule.match, finding):
        return None
    if (rule.name, finding.id, "act") in state.decided:
        return None
    if not _for_satisfied(rule, finding, now):
        return None
    return _decide(rule, finding, state, batch, now)


def _on_resolved(rule: Rule, finding: Finding, state: EngineState, batch: _Batch, now: datetime) -> Decision | None:
    """The follow-up action of a rule whose action ran for a finding that has now resolved."""
    action_model = rule.on_resolved
    if action_model is None or (rule.name, finding.id) not in state.started:
        return None
    if (rule.name, finding.id, "on_resolved") in state.decided:
        return None
    base: dict[str, Any] = {
        "rule": rule.name,
        "finding_id": finding.id,
        "decided_at": now,
        "action_kind": action_model.kind,
    }
    try:
        targets, action = _render(action_model, finding)
    except UnsafeTarget as exc:
        return _skip(rule, finding, (SkipReason.ON_RESOLVED_UNSAFE_TARGET, f"on_resolved: unsafe target: {exc}"), base)
    except Exception as exc:  # a template error in one rule must not stop the others
        return _skip(rule, finding, (SkipReason.ON_RESOLVED_TEMPLATE_ERROR, f"on_resolved template error: {exc}"), base)
    skip = _not_recovered(rule, finding, state, now) or _on_resolved_guard(rule, targets, state, batch, now)
    if skip is not None:
        return _skip(rule, finding, skip, base, targets=targets, action=action)
    dry_run = rule.guards.dry_run or state.global_dry_run
    reason = f"resolved: {finding.kind} {finding.source} after this rule acted on it"
    if dry_run:
        reason += "; dry run"
    return Decision(
        id=stable_id(rule.name, finding.id, "on_resolved"),
        outcome=Outcome.ACT,
        code="on_resolved",
        reason=reason,
        targets=targets,
        action=action,
        dry_run=dry_run,
        require_approval=rule.guards.require_approval,
        **base,
    )


def _on_resolved_guard(
    rule: Rule, targets: tuple[str, ...], state: EngineState, batch: _Batch, now: datetime
) -> Skip | None:
    """The guards an on_resolved action shares with the rule's action, as ``on_resolved_*`` skips."""
    action_model = rule.on_resolved
    assert action_model is not None
    if rule.name in state.open_circuits:
        skip: Skip | None = SkipReason.CIRCUIT_OPEN, f"circuit open: {state.open_circuits[rule.name]}"
    else:
        skip = action_model.check(targets, max_hosts=rule.guards.max_hosts) or _global_budget_skip(state, batch, now)
    return None if skip is None else (skip[0].on_resolved(), f"on_resolved: {skip[1]}")


def _not_recovered(rule: Rule, finding: Finding, state: EngineState, now: datetime) -> Skip | None:
    """Why this resolve is no evidence of recovery (missing data is never evidence), or None."""
    if finding.resolution not in (None, "recovered"):
        what = {"no_data": "its series vanished (no data)", "expired": "its resolve never arrived (expired)"}.get(
            str(finding.resolution), str(finding.resolution)
        )
        return SkipReason.ON_RESOLVED_NO_DATA, f"on_resolved: not a recovery: the finding resolved because {what}"
    if finding.kind in POLLED_FINDING_KINDS:
        if finding.source in state.sources_down:
            return SkipReason.ON_RESOLVED_SOURCE_DOWN, (
                f"on_resolved: source down: {finding.source}: {state.sources_down[finding.source]}"
            )
        age = (now - finding.last_seen).total_seconds()
        if age > rule.guards.stale_after:
            return SkipReason.ON_RESOLVED_STALE, (
                f"on_resolved: stale data: resolved on data "
                f"{format_duration(age)} old (stale_after "
                f"{format_duration(rule.guards.stale_after)})"
            )
    return None


def _decide(rule: Rule, finding: Finding, state: EngineState, batch: _Batch, now: datetime) -> Decision:
    base: dict[str, Any] = {
        "rule": rule.name,
        "finding_id": finding.id,
        "decided_at": now,
        "action_kind": rule.action.kind,
    }
    try:
        targets, action = _render(rule.action, finding)
    except UnsafeTarget as exc:  # a label that is a host pattern, not a host: never acted on
        return _skip(rule, finding, (SkipReason.UNSAFE_TARGET, f"unsafe target: {exc}"), base)
    except Exception as exc:  # a template error in one rule must not stop the others
        return _skip(rule, finding, (SkipReason.TEMPLATE_ERROR, f"template error: {exc}"), base)
    skip = _guard_skip(rule, finding, targets, state, batch, now)
    if skip is not None:
        return _skip(rule, finding, skip, base, targets=targets, action=action)
    dry_run = rule.guards.dry_run or state.global_dry_run
    approval = rule.guards.require_approval
    reason = f"matched {finding.kind} {finding.source} (score {finding.score:.2f})"
    if approval:
        reason += "; awaiting approval"
    if dry_run:
        reason += "; dry run"
    return Decision(
        id=stable_id(rule.name, finding.id, "act"),
        outcome=Outcome.ACT,
        code="act",
        reason=reason,
        targets=targets,
        action=action,
        dry_run=dry_run,
        require_approval=approval,
        **base,
    )


def _skip(rule: Rule, finding: Finding, skip: Skip, base: dict[str, Any], **rendered: Any) -> Decision:
    """A skip decision, recorded once per (rule, finding, reason)."""
    code, reason = skip
    return Decision(
        id=stable_id(rule.name, finding.id, code), outcome=Outcome.SKIP, code=code, reason=reason, **rendered, **base
    )
