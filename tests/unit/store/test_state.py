"""The store's side of the brakes: cancel on resolve, on_resolved, circuit reset, per-rule
concurrency, global rate budget, approvals, restart recovery, and the hash-chained audit log."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from aiopsd.engine import evaluate
from aiopsd.engine.history import engine_state
from aiopsd.engine.rules import RateBudget, Rule
from aiopsd.models import FindingStatus, Outcome, RunStatus
from aiopsd.sources.alertmanager import IncomingAlert
from aiopsd.store import StateStore
from aiopsd.store import tables as t

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rule(name: str = "r", targets: str = "{{ labels.host }}", **guards: Any) -> Rule:
    extra = guards.pop("on_resolved", None)
    return Rule.model_validate(
        {
            "name": name,
            "match": {"kind": "alert"},
            "action": {"playbook": "x.yml", "targets": targets},
            "on_resolved": extra,
            "guards": guards,
        }
    )


def alert(fp: str, status: str = "firing", host: str = "h1") -> IncomingAlert:
    return IncomingAlert(
        fingerprint=fp,
        status=status,
        starts_at="2026-01-01T00:00:00Z",
        ends_at=None,
        labels={"alertname": "A", "host": host},
        annotations={},
        generator_url=None,
        starts_at_epoch=T0.timestamp(),
    )


def decide(store: StateStore, rules: list[Rule], now: datetime, budget: RateBudget | None = None) -> list[Any]:
    findings = store.active_findings() + store.recently_resolved(now)
    state = engine_state(store, rules, now, sources_down={}, global_budget=budget)
    decisions = evaluate(findings, rules, state, now)
    store.record_decisions(decisions, {r.name: r for r in rules})
    return decisions


def accept(store: StateStore, *alerts: IncomingAlert, at: datetime = T0) -> None:
    store.accept_alerts(list(alerts), received_at=at.timestamp(), receiver="x", group_key="g")


def test_resolved_alert_cancels_runs_pending_or_awaiting_approval_with_a_reason(store: StateStore) -> None:
    rules = [rule("auto"), rule("manual", require_approval=True)]
    accept(store, alert("a"))
    decide(store, rules, T0)
    assert sorted(r.status for r in store.list_runs()) == [RunStatus.AWAITING_APPROVAL, RunStatus.PENDING]
    accept(store, alert("a", "resolved"), at=T0 + timedelta(seconds=5))
    runs = store.list_runs()
    assert [r.status for r in runs] == [RunStatus.CANCELED, RunStatus.CANCELED]
    assert all("resolved" in r.error for r in runs)
    # Nothing left to claim, and the resolved finding gets no new action.
    assert store.claim_runnable(T0 + timedelta(seconds=6), limit=5, owner="me") == []
    assert [d for d in decide(store, rules, T0 + timedelta(seconds=7)) if d.outcome == Outcome.ACT] == []
    kinds = [e["kind"] for e in store.audit_entries(limit=100)]
    assert kinds.count("run_canceled") == 2 and "finding_resolved" in kinds


def test_running_run_is_not_canceled_by_resolution(store: StateStore) -> None:
    rules = [rule("auto")]
    accept(store, alert("a"))
    decide(store, rules, T0)
    [claim] = store.claim_runnable(T0, limit=1, owner="me")
    accept(store, alert("a", "resolved"), at=T0 + timedelta(seconds=5))
    run = store.get_run(claim.run.id)
    assert run is not None and run.status == RunStatus.RUNNING


def test_on_resolved_runs_once_only_after_the_action_started(store: StateStore) -> None:
    rules = [rule("r", on_resolved={"notify": {"message": "{{ labels.host }} is fine again"}})]
    accept(store, alert("a", host="h1"), alert("b", host="h2"))
    decide(store, rules, T0)
    runs = {r.targets[0]: r for r in store.list_runs()}
    store.claim_runnable(T0, limit=1, owner="me", busy_targets=frozenset({"h2"}))  # only h1 starts
    store.finish_run(runs["h1"].id, RunStatus.SUCCEEDED, finished_at=T0, rc=0, output="")
    later = T0 + timedelta(seconds=30)
    accept(store, alert("a", "resolved", host="h1"), alert("b", "resolved", host="h2"), at=later)
    decisions = decide(store, rules, later + timedelta(seconds=1))
    follow = [d for d in decisions if d.code == "on_resolved"]
    assert len(follow) == 1 and follow[0].action["notify"]["message"] == "h1 is fine again"
    assert decide(store, rules, later + timedelta(seconds=2)) == []
    assert store.get_run(runs["h2"].id).status == RunStatus.CANCELED  # type: ignore[union-attr]


def _fail_runs(store: StateStore, rules: list[Rule], n: int, start: datetime) -> datetime:
    now = start
    for i in range(n):
        accept(store, alert(f"f{i}-{start.timestamp()}", host=f"h{i}"), at=now)
        decide(store, rules, now)
        for c in store.claim_runnable(now, limit=10, owner="me"):
            store.finish_run(c.run.id, RunStatus.FAILED, finished_at=now, rc=2, output="", error="boom")
        now += timedelta(seconds=10)
    return now


def test_circuit_opens_after_n_failures_and_closes_on_operator_reset(store: StateStore) -> None:
    rules = [rule("flaky", circuit_breaker={"failures": 2, "reset_after": "1h"})]
    now = _fail_runs(store, rules, 2, T0)
    accept(store, alert("next", host="hx"), at=now)
    [d] = decide(store, rules, now)
    assert d.outcome == Outcome.SKIP and d.code == "circuit_open" and "aiopsd circuit reset flaky" in d.reason
    store.reset_circuit("flaky", now + timedelta(seconds=1), by="test")
    [d2] = decide(store, rules, now + timedelta(seconds=2))
    assert d2.outcome == Outcome.ACT
    assert any(e["kind"] == "circuit_reset" and e["event"]["rule"] == "flaky" for e in store.audit_entries())


def test_circuit_closes_by_itself_after_reset_after(store: StateStore) -> None:
    rules = [rule("flaky", circuit_breaker={"failures": 2, "reset_after": "10m"})]
    now = _fail_runs(store, rules, 2, T0)
    assert "flaky" in engine_state(store, rules, now, sources_down={}).open_circuits
    assert engine_state(store, rules, now + timedelta(minutes=11), sources_down={}).open_circuits == {}


def test_per_rule_concurrency_caps_running_runs(store: StateStore) -> None:
    rules = [rule("one-at-a-time", concurrency=1), rule("free", targets="{{ labels.host }}-peer")]
    accept(store, *(alert(f"a{i}", host=f"h{i}") for i in range(3)))
    decide(store, rules, T0)
    claimed = store.claim_runnable(T0, limit=10, owner="me", rule_limits={"one-at-a-time": 1})
    by_rule = [c.run.rule for c in claimed]
    assert by_rule.count("one-at-a-time") == 1 and by_rule.count("free") == 3
    assert store.claim_runnable(T0, limit=10, owner="me", rule_limits={"one-at-a-time": 1}) == []


def test_global_rate_budget_spans_rules(store: StateStore) -> None:
    rules = [rule("a"), rule("b")]
    accept(store, *(alert(f"x{i}", host=f"h{i}") for i in range(3)))
    decisions = decide(store, rules, T0, budget=RateBudget(count=4, window=3600))
    acts = [d for d in decisions if d.outcome == Outcome.ACT]
    skips = [d for d in decisions if d.code == "global_rate_budget"]
    assert len(acts) == 4 and len(skips) == 2
    assert "actions.max_per_window 4" in skips[0].reason
    # Still exhausted on the next tick (from the store, not just within one evaluate).
    accept(store, alert("late", host="h9"), at=T0 + timedelta(minutes=1))
    later = decide(store, rules, T0 + timedelta(minutes=1), budget=RateBudget(count=4, window=3600))
    assert {d.code for d in later} == {"global_rate_budget"}


def test_approval_moves_only_awaiting_runs(store: StateStore) -> None:
    rules = [rule("manual", require_approval=True)]
    accept(store, alert("a"))
    decide(store, rules, T0)
    [run] = store.list_runs()
    assert store.claim_runnable(T0, limit=5, owner="me") == []
    approved = store.approve_run(run.id, T0, by="tester")
    assert approved is not None and approved.status == RunStatus.PENDING
    assert store.approve_run(run.id, T0, by="tester") is None
    assert len(store.claim_runnable(T0, limit=5, owner="me")) == 1


def test_restart_marks_running_interrupted_and_never_reruns_it(store: StateStore) -> None:
    rules = [rule("r")]
    accept(store, alert("a"))
    decide(store, rules, T0)
    store.claim_runnable(T0, limit=5, owner="dead-process")
    assert store.mark_interrupted(T0 + timedelta(seconds=1)) == 1
    [run] = store.list_runs()
    assert run.status == RunStatus.INTERRUPTED
    assert store.claim_runnable(T0 + timedelta(seconds=2), limit=5, owner="me") == []
    assert decide(store, rules, T0 + timedelta(seconds=3)) == []


def test_duplicate_deliveries_make_one_alert_one_finding_one_run(store: StateStore) -> None:
    rules = [rule("r")]
    for _ in range(3):
        accept(store, alert("a"), alert("a"))
        decide(store, rules, T0)
    assert store.counts()["alerts"] == 1
    assert len(store.list_runs()) == 1
    assert [f.status for f in store.list_findings()] == [FindingStatus.FIRING]


# ------------------------------------------------------------------------------ audit log
def test_audit_log_records_the_whole_story_and_verifies(store: StateStore) -> None:
    rules = [rule("r")]
    accept(store, alert("a"))
    decide(store, rules, T0)
    [c] = store.claim_runnable(T0, limit=1, owner="me")
    store.finish_run(c.run.id, RunStatus.SUCCEEDED, finished_at=T0, rc=0, output="ok")
    kinds = [e["kind"] for e in reversed(store.audit_entries())]
    assert kinds == ["alert_accepted", "finding_opened", "decision", "run_created", "run_started", "run_finished"]
    result = store.verify_audit()
    assert result.ok and result.entries == 6


@pytest.mark.parametrize("tamper", ["event", "delete", "hash"])
def test_audit_verify_names_the_first_tampered_entry(store: StateStore, tamper: str) -> None:
    rules = [rule("r")]
    for i in range(3):
        accept(store, alert(f"a{i}", host=f"h{i}"))
    decide(store, rules, T0)
    assert store.verify_audit().ok
    with store.write() as conn:
        if tamper == "event":
            conn.execute(
                update(t.audit_log).where(t.audit_log.c.seq == 4).values(event=json.dumps({"fingerprint": "forged"}))
            )
        elif tamper == "delete":
            conn.execute(t.audit_log.delete().where(t.audit_log.c.seq == 4))
        else:
            conn.execute(update(t.audit_log).where(t.audit_log.c.seq == 4).values(hash="f" * 64))
    result = store.verify_audit()
    assert not result.ok
    assert result.first_bad == 4
    assert result.entries == 3


def test_resolved_anomaly_incident_cancels_its_pending_run(store: StateStore) -> None:
    from aiopsd.models import Finding, FindingKind

    r = Rule.model_validate(
        {
            "name": "restart",
            "match": {"kind": "anomaly"},
            "action": {"playbook": "x.yml", "targets": "{{ labels.host }}"},
        }
    )
    firing = Finding(
        id="inc1",
        kind=FindingKind.ANOMALY,
        source="latency",
        labels={"host": "h1"},
        score=3.0,
        starts_at=T0,
        last_seen=T0,
        sightings=(T0.timestamp(),),
    )
    store.upsert_findings([firing])
    decide(store, [r], T0)
    [run] = store.list_runs()
    assert run.status == RunStatus.PENDING
    later = T0 + timedelta(seconds=30)
    store.upsert_findings(
        [firing.model_copy(update={"status": FindingStatus.RESOLVED, "last_seen": later, "sightings": ()})]
    )
    run = store.get_run(run.id)  # type: ignore[assignment]
    assert run is not None and run.status == RunStatus.CANCELED and "resolved" in run.error


def test_global_and_rule_dry_run_mark_the_decision_and_its_run(store: StateStore) -> None:
    rules = [rule("dry", dry_run=True), rule("wet", targets="{{ labels.host }}-2")]
    accept(store, alert("a"))
    findings = store.active_findings()
    state = engine_state(store, rules, T0, sources_down={})
    assert {d.rule: d.dry_run for d in evaluate(findings, rules, state, T0)} == {"dry": True, "wet": False}
    state = engine_state(store, rules, T0, sources_down={}, global_dry_run=True)
    decisions = evaluate(findings, rules, state, T0)
    assert all(d.dry_run for d in decisions)
    store.record_decisions(decisions, {r.name: r for r in rules})
    assert all(r.dry_run for r in store.list_runs())
