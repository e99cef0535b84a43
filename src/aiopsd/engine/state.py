"""What the engine knows when it decides (:class:`EngineState`), and the helpers every decision path shares.

Pure like the rest of the engine: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiopsd.durations import format_duration
from aiopsd.engine.actions import ActionSpec, Skip
from aiopsd.engine.maintenance import MaintenanceWindow
from aiopsd.engine.rules import RateBudget, Rule
from aiopsd.engine.silences import Silence
from aiopsd.models import Decision, Finding, Outcome, OutcomeRecord, SkipReason, stable_id


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
    # Closed loop (engine/followups.py): (rule, finding id) -> its run whose remediation was not
    # verified (targets, action), and rule -> why it is demoted to require_approval (min_success).
    not_verified: Mapping[tuple[str, str], OutcomeRecord] = field(default_factory=dict)
    demoted: Mapping[str, str] = field(default_factory=dict)


def template_context(finding: Finding) -> dict[str, Any]:
    return {
        "labels": dict(finding.labels),
        "finding": finding.model_dump(mode="json"),
        "kind": str(finding.kind),
        "source": finding.source,
        "score": finding.score,
    }


def render_action(
    action_model: ActionSpec, finding: Finding, context: dict[str, Any] | None = None
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Checked targets and the rendered action (with its ports and AWX limit bound in)."""
    return action_model.prepare(context if context is not None else template_context(finding))


class Batch:
    """Acts decided earlier in the same evaluate() call count against later guards."""

    def __init__(self) -> None:
        self.acts: list[tuple[str, tuple[str, ...], datetime]] = []

    def last_for(self, rule: str, target: str) -> datetime | None:
        times = [t for r, ts, t in self.acts if r == rule and target in (ts or ("*",))]  # no targets: "*"
        return max(times) if times else None

    def count(self, rule: str | None = None) -> int:
        return sum(1 for r, _, _ in self.acts if rule is None or r == rule)


def global_budget_skip(state: EngineState, batch: Batch, now: datetime) -> Skip | None:
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


def skip_decision(rule: Rule, finding: Finding, skip: Skip, base: dict[str, Any], **rendered: Any) -> Decision:
    """A skip decision, recorded once per (rule, finding, reason)."""
    code, reason = skip
    return Decision(
        id=stable_id(rule.name, finding.id, code), outcome=Outcome.SKIP, code=code, reason=reason, **rendered, **base
    )
