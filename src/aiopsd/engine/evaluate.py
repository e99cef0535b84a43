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

Closed loop (engine/followups.py, engine/verify.py): an act decision of a rule with
``verify:`` carries the check rendered for its finding; a finding whose run was not verified
gets the rule's ``on_not_verified`` once and is never acted on by that rule again; a rule
demoted by ``min_success`` still decides, but its actions wait for approval.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from aiopsd.durations import format_duration
from aiopsd.engine.actions import Skip
from aiopsd.engine.followups import on_not_verified, on_resolved
from aiopsd.engine.maintenance import covering
from aiopsd.engine.rules import ForCount, Match, Rule
from aiopsd.engine.silences import silencing
from aiopsd.engine.state import (
    Batch,
    EngineState,
    global_budget_skip,
    render_action,
    skip_decision,
    template_context,
)
from aiopsd.engine.targets import UnsafeTarget
from aiopsd.engine.targets import render_targets as _render_hosts
from aiopsd.engine.verify import plan
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

__all__ = ["EngineState", "evaluate", "matches", "render_targets", "template_context"]

logger = logging.getLogger(__name__)


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


def render_targets(rule: Rule, finding: Finding) -> tuple[str, ...]:
    """The canonical hosts a rule's action would touch (raises UnsafeTarget for a pattern)."""
    return _render_hosts(rule.action.target_source(), template_context(finding))[0]


def _guard_skip(
    rule: Rule, finding: Finding, targets: tuple[str, ...], state: EngineState, batch: Batch, now: datetime
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
    return global_budget_skip(state, batch, now)


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


def evaluate(findings: Sequence[Finding], rules: Sequence[Rule], state: EngineState, now: datetime) -> list[Decision]:
    """Decide, for every firing finding and every enabled rule it matches, act or skip (and why)."""
    batch = Batch()
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


def _evaluate_one(rule: Rule, finding: Finding, state: EngineState, batch: Batch, now: datetime) -> Decision | None:
    if (rule.name, finding.id) in state.not_verified:
        return on_not_verified(rule, finding, state, batch, now) or (
            on_resolved(rule, finding, state, batch, now) if finding.status == FindingStatus.RESOLVED else None
        )
    if finding.status == FindingStatus.RESOLVED:
        return on_resolved(rule, finding, state, batch, now)
    if finding.status != FindingStatus.FIRING or not matches(rule.match, finding):
        return None
    if (rule.name, finding.id, "act") in state.decided:
        return None
    if not _for_satisfied(rule, finding, now):
        return None
    return _decide(rule, finding, state, batch, now)


def _decide(rule: Rule, finding: Finding, state: EngineState, batch: Batch, now: datetime) -> Decision:
    base: dict[str, Any] = {
        "rule": rule.name,
        "finding_id": finding.id,
        "decided_at": now,
        "action_kind": rule.action.kind,
    }
    try:
        targets, action = render_action(rule.action, finding)
    except UnsafeTarget as exc:  # a label that is a host pattern, not a host: never acted on
        return skip_decision(rule, finding, (SkipReason.UNSAFE_TARGET, f"unsafe target: {exc}"), base)
    except Exception as exc:  # a template error in one rule must not stop the others
        return skip_decision(rule, finding, (SkipReason.TEMPLATE_ERROR, f"template error: {exc}"), base)
    try:  # an action that cannot be judged afterwards is not taken
        verify = None if rule.verify is None else plan(rule.verify, template_context(finding))
    except Exception as exc:  # UnsafeQuery (a label would change the query), or a template error
        return skip_decision(rule, finding, (SkipReason.VERIFY_TEMPLATE_ERROR, f"verify: {exc}"), base)
    skip = _guard_skip(rule, finding, targets, state, batch, now)
    if skip is not None:
        return skip_decision(rule, finding, skip, base, targets=targets, action=action)
    dry_run = rule.guards.dry_run or state.global_dry_run
    demoted = state.demoted.get(rule.name)
    approval = rule.guards.require_approval or demoted is not None
    reason = f"matched {finding.kind} {finding.source} (score {finding.score:.2f})"
    if demoted is not None:
        reason += f"; awaiting approval: rule demoted: {demoted}"
    elif approval:
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
        verify=verify,
        **base,
    )
