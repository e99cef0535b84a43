"""Follow-up decisions of a rule on a finding it already acted on: ``on_resolved`` and ``on_not_verified``.

``on_resolved`` (id ``stable_id(rule, finding, "on_resolved")``) follows an action that started,
once the finding resolved as a recovery. ``on_not_verified`` (id ``stable_id(rule, finding,
"on_not_verified")``) follows a run whose ``verify:`` check ended not_verified: decided once,
under the rule's guards (circuit, targets, max_hosts, global budget, dry_run, require_approval
as written; a demotion limits the rule's ``action``, not the escalation that tells people).
Its templates see the finding and ``run`` (``id``, ``targets``, ``extra_vars`` of the original
run); a playbook escalation (a rollback) gets the original run's ``extra_vars`` under its own.
After that, the rule records ``not_verified_before`` once and never acts on the finding again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiopsd.durations import format_duration
from aiopsd.engine.actions import Skip
from aiopsd.engine.rules import Rule
from aiopsd.engine.state import (
    Batch,
    EngineState,
    global_budget_skip,
    render_action,
    skip_decision,
    template_context,
)
from aiopsd.engine.targets import UnsafeTarget
from aiopsd.models import POLLED_FINDING_KINDS, Decision, Finding, Outcome, SkipReason, stable_id

ON_NOT_VERIFIED = "on_not_verified"


def on_resolved(rule: Rule, finding: Finding, state: EngineState, batch: Batch, now: datetime) -> Decision | None:
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
        targets, action = render_action(action_model, finding)
    except UnsafeTarget as exc:
        return skip_decision(
            rule, finding, (SkipReason.ON_RESOLVED_UNSAFE_TARGET, f"on_resolved: unsafe target: {exc}"), base
        )
    except Exception as exc:  # a template error in one rule must not stop the others
        return skip_decision(
            rule, finding, (SkipReason.ON_RESOLVED_TEMPLATE_ERROR, f"on_resolved template error: {exc}"), base
        )
    skip = _not_recovered(rule, finding, state, now) or _on_resolved_guard(rule, targets, state, batch, now)
    if skip is not None:
        return skip_decision(rule, finding, skip, base, targets=targets, action=action)
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
    rule: Rule, targets: tuple[str, ...], state: EngineState, batch: Batch, now: datetime
) -> Skip | None:
    """The guards an on_resolved action shares with the rule's action, as ``on_resolved_*`` skips."""
    action_model = rule.on_resolved
    assert action_model is not None
    if rule.name in state.open_circuits:
        skip: Skip | None = SkipReason.CIRCUIT_OPEN, f"circuit open: {state.open_circuits[rule.name]}"
    else:
        skip = action_model.check(targets, max_hosts=rule.guards.max_hosts) or global_budget_skip(state, batch, now)
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


def on_not_verified(rule: Rule, finding: Finding, state: EngineState, batch: Batch, now: datetime) -> Decision | None:
    """After a not_verified run: the escalation once, then ``not_verified_before`` once; None after that."""
    record = state.not_verified.get((rule.name, finding.id))
    if record is None:
        return None
    action_model = rule.on_not_verified
    if action_model is None or (rule.name, finding.id, ON_NOT_VERIFIED) in state.decided:
        return _not_verified_before(rule, finding, record.run_id, state, now)
    base: dict[str, Any] = {
        "rule": rule.name,
        "finding_id": finding.id,
        "decided_at": now,
        "action_kind": action_model.kind,
    }
    original = dict(record.action)
    extra = original.get("extra_vars") if isinstance(original.get("extra_vars"), dict) else {}
    context = {
        **template_context(finding),
        "run": {"id": record.run_id, "targets": list(record.targets), "extra_vars": extra},
    }
    try:
        targets, action = render_action(action_model, finding, context)
    except UnsafeTarget as exc:
        return skip_decision(
            rule, finding, (SkipReason.ESCALATE_UNSAFE_TARGET, f"on_not_verified: unsafe target: {exc}"), base
        )
    except Exception as exc:  # a template error in one rule must not stop the others
        return skip_decision(
            rule, finding, (SkipReason.ESCALATE_TEMPLATE_ERROR, f"on_not_verified template error: {exc}"), base
        )
    if action_model.kind == "playbook" and extra:
        action = {**action, "extra_vars": {**extra, **(action.get("extra_vars") or {})}}
    skip = _escalation_guard(rule, action_model, targets, state, batch, now)
    if skip is not None:
        return skip_decision(rule, finding, skip, base, targets=targets, action=action)
    dry_run = rule.guards.dry_run or state.global_dry_run
    reason = f"not verified: run {record.run_id} succeeded but did not fix the problem; escalating"
    if rule.guards.require_approval:
        reason += "; awaiting approval"
    if dry_run:
        reason += "; dry run"
    return Decision(
        id=stable_id(rule.name, finding.id, ON_NOT_VERIFIED),
        outcome=Outcome.ACT,
        code=ON_NOT_VERIFIED,
        reason=reason,
        targets=targets,
        action=action,
        dry_run=dry_run,
        require_approval=rule.guards.require_approval,
        **base,
    )


def _escalation_guard(
    rule: Rule, action_model: Any, targets: tuple[str, ...], state: EngineState, batch: Batch, now: datetime
) -> Skip | None:
    if rule.name in state.open_circuits:
        skip: Skip | None = SkipReason.CIRCUIT_OPEN, f"circuit open: {state.open_circuits[rule.name]}"
    else:
        skip = action_model.check(targets, max_hosts=rule.guards.max_hosts) or global_budget_skip(state, batch, now)
    return None if skip is None else (skip[0].escalate(), f"on_not_verified: {skip[1]}")


def _not_verified_before(
    rule: Rule, finding: Finding, run_id: int, state: EngineState, now: datetime
) -> Decision | None:
    code = SkipReason.NOT_VERIFIED_BEFORE
    if (rule.name, finding.id, code) in state.decided:
        return None
    base: dict[str, Any] = {
        "rule": rule.name,
        "finding_id": finding.id,
        "decided_at": now,
        "action_kind": rule.action.kind,
    }
    return skip_decision(
        rule,
        finding,
        (code, f"not acting again: run {run_id} of this rule on this finding was not verified (no retry storms)"),
        base,
    )
