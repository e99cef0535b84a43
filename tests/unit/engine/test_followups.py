"""Closed loop in the pure engine: the verify plan on an act, the escalation once, no retry, demotion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiopsd.engine import EngineState, Rule, evaluate
from aiopsd.engine.history import fold
from aiopsd.models import (
    DecisionRecord,
    Finding,
    FindingKind,
    FindingStatus,
    History,
    Outcome,
    OutcomeRecord,
    SkipReason,
    VerifyOutcome,
)

NOW = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)


def rule(**kw: Any) -> Rule:
    base: dict[str, Any] = {
        "name": "r",
        "match": {"kind": "alert"},
        "action": {"playbook": "restart.yml", "targets": "{{ labels.host }}", "extra_vars": {"service": "api"}},
        "verify": {"after": "1m", "within": "5m", "check": {"promql": 'up{instance="{{ labels.host }}"} == 1'}},
        "on_not_verified": {
            "playbook": "rollback.yml",
            "targets": "{{ run.targets[0] }}",
            "extra_vars": {"reason": "run {{ run.id }} did not fix {{ labels.host }}"},
        },
    }
    base.update(kw)
    return Rule.model_validate(base)


def finding(status: FindingStatus = FindingStatus.FIRING, host: str = "web-1") -> Finding:
    return Finding(
        id="f1",
        kind=FindingKind.ALERT,
        source="alertmanager",
        labels={"host": host},
        status=status,
        starts_at=NOW - timedelta(minutes=10),
        last_seen=NOW,
    )


def not_verified(run_id: int = 7) -> OutcomeRecord:
    return OutcomeRecord(
        rule="r",
        finding_id="f1",
        run_id=run_id,
        outcome=VerifyOutcome.NOT_VERIFIED,
        decided_at=NOW - timedelta(seconds=5),
        targets=("web-1",),
        action={"playbook": "restart.yml", "extra_vars": {"service": "api", "version": "1.2"}},
    )


def test_an_act_carries_its_verify_check_rendered_for_the_finding() -> None:
    [d] = evaluate(
        [finding(host='evil"} or vector(1) #')], [rule(action={"notify": {"message": "x"}})], EngineState(), NOW
    )
    assert d.outcome == Outcome.ACT and d.verify is not None
    assert d.verify["after"] == 60.0 and d.verify["within"] == 300.0
    assert d.verify["check"]["promql"] == 'up{instance="evil\\x22} or vector(1) #"} == 1'


def test_not_verified_escalates_once_with_the_original_runs_vars_then_never_acts_again() -> None:
    state = EngineState(not_verified={("r", "f1"): not_verified()})
    [d] = evaluate([finding()], [rule()], state, NOW)
    assert (d.outcome, d.code) == (Outcome.ACT, "on_not_verified")
    assert d.action["playbook"] == "rollback.yml" and d.targets == ("web-1",)
    # The rollback gets the original run's extra_vars under its own.
    assert d.action["extra_vars"] == {"service": "api", "version": "1.2", "reason": "run 7 did not fix web-1"}
    assert "run 7" in d.reason
    decided = frozenset({("r", "f1", "act"), ("r", "f1", "on_not_verified")})
    state = EngineState(not_verified={("r", "f1"): not_verified()}, decided=decided)
    [skip] = evaluate([finding()], [rule()], state, NOW)
    assert (skip.outcome, skip.code) == (Outcome.SKIP, SkipReason.NOT_VERIFIED_BEFORE)
    assert "not verified" in skip.reason
    state = EngineState(not_verified={("r", "f1"): not_verified()}, decided=decided | {("r", "f1", skip.code)})
    assert evaluate([finding()], [rule()], state, NOW) == []


def test_without_on_not_verified_the_finding_only_records_why_it_is_not_retried() -> None:
    r = rule(on_not_verified=None)
    [skip] = evaluate([finding()], [r], EngineState(not_verified={("r", "f1"): not_verified()}), NOW)
    assert skip.code == SkipReason.NOT_VERIFIED_BEFORE


def test_the_escalation_runs_under_the_rules_guards() -> None:
    state = EngineState(not_verified={("r", "f1"): not_verified()}, open_circuits={"r": "3 failures"})
    [d] = evaluate([finding()], [rule()], state, NOW)
    assert (d.outcome, d.code) == (Outcome.SKIP, SkipReason.ESCALATE_CIRCUIT_OPEN)
    r = rule(guards={"require_approval": True, "dry_run": True})
    [d] = evaluate([finding()], [r], EngineState(not_verified={("r", "f1"): not_verified()}), NOW)
    assert d.require_approval and d.dry_run


def test_a_resolved_finding_still_gets_its_escalation() -> None:
    [d] = evaluate(
        [finding(FindingStatus.RESOLVED)], [rule()], EngineState(not_verified={("r", "f1"): not_verified()}), NOW
    )
    assert d.code == "on_not_verified"


def test_a_demoted_rule_still_decides_but_waits_for_approval() -> None:
    state = EngineState(demoted={"r": "2 of its last 2 verified outcomes were not verified"})
    [d] = evaluate([finding()], [rule()], state, NOW)
    assert d.outcome == Outcome.ACT and d.require_approval
    assert "rule demoted" in d.reason


def test_a_label_that_would_change_a_conditional_query_is_never_acted_on() -> None:
    r = rule(
        verify={"within": "5m", "check": {"promql": "up{% if labels.host == 'x' %} or {{ labels.host }}{% endif %}"}}
    )
    [d] = evaluate([finding(host="x")], [r], EngineState(), NOW)
    assert (d.outcome, d.code) == (Outcome.SKIP, SkipReason.VERIFY_TEMPLATE_ERROR)


def test_fold_turns_outcomes_into_not_verified_and_demotions() -> None:
    r = rule(min_success={"of_last": 3, "verified": 2})
    second = OutcomeRecord(
        rule="r", finding_id="f0", run_id=3, outcome=VerifyOutcome.NOT_VERIFIED, decided_at=NOW - timedelta(hours=1)
    )
    history = History(
        decisions=[DecisionRecord("r", "f1", "act", Outcome.ACT, ("web-1",), NOW - timedelta(minutes=9), True)],
        outcomes=[not_verified(), second],
    )
    state = fold(history, [r], NOW, sources_down={})
    assert set(state.not_verified) == {("r", "f1"), ("r", "f0")}
    assert "r" in state.demoted
    restored = fold(
        History(outcomes=[not_verified(), second], restores={"r": NOW - timedelta(minutes=1)}),
        [r],
        NOW,
        sources_down={},
    )
    assert restored.demoted == {}
