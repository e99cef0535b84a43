"""The pure engine: what acts, what is skipped and why, and that nothing acts twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from aiopsd.engine import EngineState, Rule, evaluate
from aiopsd.engine.rules import RateBudget
from aiopsd.models import Finding, FindingKind, FindingStatus, Outcome

NOW = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)


def rule(**kw: Any) -> Rule:
    base: dict[str, Any] = {
        "name": "r",
        "match": {"kind": "anomaly"},
        "action": {"playbook": "restart_service.yml", "targets": "{{ labels.host }}"},
    }
    base.update(kw)
    return Rule.model_validate(base)


def finding(
    fid: str = "f1",
    *,
    host: str = "web-1",
    kind: FindingKind = FindingKind.ANOMALY,
    score: float = 2.0,
    age: float = 0.0,
    last_seen_age: float = 0.0,
    status: FindingStatus = FindingStatus.FIRING,
    sightings: tuple[float, ...] = (),
    source: str = "latency",
) -> Finding:
    return Finding(
        id=fid,
        kind=kind,
        source=source,
        labels={"host": host, "job": "api"},
        score=score,
        status=status,
        starts_at=NOW - timedelta(seconds=age),
        last_seen=NOW - timedelta(seconds=last_seen_age),
        sightings=sightings,
    )


def test_matching_finding_acts_on_rendered_target() -> None:
    [d] = evaluate([finding()], [rule()], EngineState(), NOW)
    assert d.outcome == Outcome.ACT
    assert d.targets == ("web-1",)
    assert d.action["playbook"] == "restart_service.yml"


def test_label_matchers_equality_regex_negation() -> None:
    f = finding(host="web-7")
    assert evaluate([f], [rule(match={"labels": {"host": "~web-\\d+"}})], EngineState(), NOW)
    assert not evaluate([f], [rule(match={"labels": {"host": "~web-1"}})], EngineState(), NOW)
    assert not evaluate([f], [rule(match={"labels": {"host": "!web-7"}})], EngineState(), NOW)
    assert evaluate([f], [rule(match={"labels": {"host": "!~db-.*"}})], EngineState(), NOW)
    assert not evaluate([f], [rule(match={"labels": {"missing": "x"}})], EngineState(), NOW)
    assert not evaluate([f], [rule(match={"min_score": 3.0})], EngineState(), NOW)


def test_for_duration_waits_then_acts() -> None:
    r = rule(**{"for": "5m"})
    assert evaluate([finding(age=60)], [r], EngineState(), NOW) == []
    assert evaluate([finding(age=301)], [r], EngineState(), NOW)[0].outcome == Outcome.ACT


def test_for_count_within_window() -> None:
    r = rule(**{"for": {"count": 3, "window": "1m"}})
    t = NOW.timestamp()
    assert evaluate([finding(sightings=(t - 100, t - 30, t))], [r], EngineState(), NOW) == []
    assert evaluate([finding(sightings=(t - 50, t - 30, t))], [r], EngineState(), NOW)


def test_already_acted_finding_never_acts_again() -> None:
    r = rule()
    [d] = evaluate([finding()], [r], EngineState(), NOW)
    state = EngineState(decided=frozenset({("r", "f1", "act")}))
    assert evaluate([finding()], [r], state, NOW + timedelta(hours=5)) == []
    again = evaluate([finding()], [r], EngineState(), NOW)
    assert again[0].id == d.id, "the same rule and finding always give the same decision id"


def test_resolved_findings_do_not_act() -> None:
    assert evaluate([finding(status=FindingStatus.RESOLVED)], [rule()], EngineState(), NOW) == []


def test_cooldown_per_target_including_within_one_batch() -> None:
    r = rule(guards={"cooldown": "30m"})
    out = evaluate([finding("a", age=10), finding("b", age=5), finding("c", host="web-2")], [r], EngineState(), NOW)
    by = {d.finding_id: d for d in out}
    assert by["a"].outcome == Outcome.ACT
    assert by["b"].outcome == Outcome.SKIP and by["b"].code == "cooldown"
    assert "30m left" in by["b"].reason
    assert by["c"].outcome == Outcome.ACT
    state = EngineState(last_action={("r", "web-1"): NOW - timedelta(minutes=31)})
    assert evaluate([finding("d")], [r], state, NOW)[0].outcome == Outcome.ACT


def test_cooldown_of_an_action_without_targets_holds_within_one_batch() -> None:
    """Two findings of one model (its drift and its estimated performance) in one batch: one retrain."""
    r = rule(match={"kind": "drift"}, action={"notify": {"message": "retrain me"}}, guards={"cooldown": "1h"})
    out = evaluate(
        [finding("a", kind=FindingKind.DRIFT, age=10), finding("b", kind=FindingKind.DRIFT, age=5)],
        [r],
        EngineState(),
        NOW,
    )
    assert [(d.finding_id, d.outcome, d.code) for d in out] == [
        ("a", Outcome.ACT, "act"),
        ("b", Outcome.SKIP, "cooldown"),
    ]


def test_rate_budget_and_blast_radius() -> None:
    r = rule(guards={"max_per_window": {"count": 2, "window": "1h"}})
    state = EngineState(recent_actions={"r": [NOW - timedelta(minutes=10), NOW - timedelta(minutes=20)]})
    [d] = evaluate([finding()], [r], state, NOW)
    assert (d.outcome, d.code) == (Outcome.SKIP, "rate_budget")
    wide = rule(action={"playbook": "x.yml", "targets": ["a", "b", "c"]}, guards={"max_hosts": 2})
    [d] = evaluate([finding()], [wide], EngineState(), NOW)
    assert d.code == "max_hosts" and "3 targets > max_hosts 2" in d.reason


def test_no_action_from_missing_or_stale_data() -> None:
    down = EngineState(sources_down={"latency": "Prometheus unreachable"})
    [d] = evaluate([finding()], [rule()], down, NOW)
    assert (d.outcome, d.code) == (Outcome.SKIP, "source_down")
    assert "Prometheus unreachable" in d.reason
    [d] = evaluate([finding(last_seen_age=3600)], [rule()], EngineState(), NOW)
    assert d.code == "stale"
    # Alerts come from Alertmanager, not from a polled source: a down watch does not block them.
    alert = finding(kind=FindingKind.ALERT, source="alertmanager")
    r = rule(match={"kind": "alert"})
    assert evaluate([alert], [r], down, NOW)[0].outcome == Outcome.ACT


def test_skip_recorded_once_then_acts_when_the_guard_clears() -> None:
    r = rule()
    down = EngineState(sources_down={"latency": "x"}, decided=frozenset({("r", "f1", "source_down")}))
    assert evaluate([finding()], [r], down, NOW) == []
    up = EngineState(decided=frozenset({("r", "f1", "source_down")}))
    assert evaluate([finding()], [r], up, NOW)[0].outcome == Outcome.ACT


def test_circuit_open_approval_and_dry_run_are_explained() -> None:
    [d] = evaluate([finding()], [rule()], EngineState(open_circuits={"r": "3 consecutive failed runs"}), NOW)
    assert d.code == "circuit_open" and "3 consecutive" in d.reason
    [d] = evaluate([finding()], [rule(guards={"require_approval": True, "dry_run": True})], EngineState(), NOW)
    assert d.outcome == Outcome.ACT and d.require_approval and d.dry_run
    assert "awaiting approval" in d.reason and "dry run" in d.reason
    [d] = evaluate([finding()], [rule()], EngineState(global_dry_run=True), NOW)
    assert d.dry_run


def test_template_errors_skip_with_reason_and_do_not_stop_other_rules() -> None:
    bad = rule(name="bad", action={"playbook": "x.yml", "targets": "{{ labels.nope }}"})
    good = rule(name="good")
    out = {d.rule: d for d in evaluate([finding()], [bad, good], EngineState(), NOW)}
    assert out["bad"].code == "template_error" and "nope" in out["bad"].reason
    assert out["good"].outcome == Outcome.ACT


def test_a_rule_that_fails_to_evaluate_is_a_skip_and_the_other_rules_still_decide() -> None:
    good = rule(name="good")
    broken = rule(name="broken")
    # A window that validation refuses (.inf): stands in for any bug that raises inside one rule.
    guards = broken.guards.model_copy(
        update={"max_per_window": RateBudget.model_construct(count=1, window=float("inf"))}
    )
    broken = broken.model_copy(update={"guards": guards})
    out = {d.rule: d for d in evaluate([finding()], [broken, good], EngineState(), NOW)}
    assert out["good"].outcome == Outcome.ACT
    assert (out["broken"].outcome, out["broken"].code) == (Outcome.SKIP, "evaluation_error")
    assert "OverflowError" in out["broken"].reason
    # Recorded once: the same failure is not re-decided every tick.
    decided = frozenset({("broken", "f1", "evaluation_error"), ("good", "f1", "act")})
    assert evaluate([finding()], [broken, good], EngineState(decided=decided), NOW) == []


@pytest.mark.parametrize(
    ("resolution", "down", "seen_ago", "code"),
    [
        ("recovered", False, 0.0, "on_resolved"),
        ("no_data", False, 0.0, "on_resolved_no_data"),
        ("expired", False, 0.0, "on_resolved_no_data"),
        ("recovered", True, 0.0, "on_resolved_source_down"),
        ("recovered", False, 3600.0, "on_resolved_stale"),
    ],
)
def test_on_resolved_only_follows_a_recovery_on_fresh_data(
    resolution: str, down: bool, seen_ago: float, code: str
) -> None:
    r = rule(on_resolved={"notify": {"message": "{{ labels.host }} is back"}})
    f = finding(status=FindingStatus.RESOLVED, last_seen_age=seen_ago).model_copy(update={"resolution": resolution})
    state = EngineState(
        started=frozenset({("r", "f1")}), sources_down={"latency": "connection refused"} if down else {}
    )
    [d] = evaluate([f], [r], state, NOW)
    assert d.code == code
    assert (d.outcome == Outcome.ACT) == (code == "on_resolved")
