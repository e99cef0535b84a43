"""The verifier on a real store: outcomes decided once, missing data never a verdict, escalation, demotion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from aiopsd.daemon.dispatcher import Dispatcher
from aiopsd.daemon.runtime import Runtime
from aiopsd.daemon.verifier import Verifier
from aiopsd.engine.rules import Rule
from aiopsd.errors import SourceError
from aiopsd.models import Outcome, RunStatus, SkipReason, VerifyOutcome
from aiopsd.sources.alertmanager import WebhookAlert
from aiopsd.store import StateStore

T0 = datetime.now(UTC).replace(microsecond=0)


def rule(**kw: Any) -> Rule:
    base: dict[str, Any] = {
        "name": "fix",
        "match": {"kind": "alert"},
        "action": {"log": {"message": "fixing {{ labels.host }}"}},
        "verify": {"after": "1m", "within": "5m", "check": "resolved"},
        "on_not_verified": {"log": {"message": "run {{ run.id }} did not fix {{ labels.host }}"}},
    }
    base.update(kw)
    return Rule.model_validate(base)


def alert(rt: Runtime, host: str, status: str = "firing", at: datetime = T0) -> None:
    data: dict[str, Any] = {
        "status": status,
        "labels": {"alertname": "Down", "host": host},
        "startsAt": (T0 - timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
        "fingerprint": f"fp-{host}",
    }
    if status == "resolved":
        data["endsAt"] = at.isoformat().replace("+00:00", "Z")
    incoming = WebhookAlert.model_validate(data).to_incoming()
    rt.store.accept_alerts([incoming], received_at=at.timestamp(), receiver="x", group_key="g")


def act_and_succeed(rt: Runtime, d: Dispatcher, host: str, at: datetime) -> int:
    """The finding fires, the rule acts, its run succeeds at ``at + 1s``; returns the run id."""
    alert(rt, host, at=at)
    d.decide(at)
    [claim] = rt.store.claim_runnable(at, limit=1, owner=rt.replica)
    done = at + timedelta(seconds=1)
    assert rt.store.finish_run(claim.run.id, RunStatus.SUCCEEDED, finished_at=done, rc=0, output="", owner=rt.replica)
    return claim.run.id


@pytest.fixture
def loop(runtime: Runtime) -> Any:
    d = Dispatcher(runtime)
    yield runtime, d
    d.shutdown(1)


def outcomes(rt: Runtime, rule_name: str = "fix") -> dict[str, float]:
    m = rt.metrics.registry
    return {
        o: m.get_sample_value("aiopsd_remediation_outcomes_total", {"rule": rule_name, "outcome": o}) or 0.0
        for o in ("verified", "not_verified", "unknown")
    }


def test_a_resolve_after_the_run_is_verified(loop: Any) -> None:
    rt, d = loop
    rt.set_rules([rule()])
    run_id = act_and_succeed(rt, d, "web-1", T0)
    [run] = rt.store.list_runs()
    assert run.verification is not None and run.verification.outcome == VerifyOutcome.PENDING
    assert d.verifier.tick(T0 + timedelta(seconds=30)) == 0  # not due before `after`
    assert d.verifier.tick(T0 + timedelta(seconds=70)) == 0  # still firing: a failed check, no verdict yet
    alert(rt, "web-1", "resolved", at=T0 + timedelta(seconds=80))
    assert d.verifier.tick(T0 + timedelta(seconds=90)) == 1
    got = rt.store.get_run(run_id)
    assert got is not None and got.verification is not None
    assert got.verification.outcome == VerifyOutcome.VERIFIED and "resolved" in got.verification.reason
    assert outcomes(rt)["verified"] == 1.0
    kinds = [e["kind"] for e in rt.store.audit_entries(limit=50)]
    assert "verification_opened" in kinds and "verification" in kinds
    assert rt.store.verify_audit().ok


def test_still_firing_at_the_deadline_is_not_verified_escalates_once_and_is_never_retried(loop: Any) -> None:
    rt, d = loop
    rt.set_rules([rule()])
    run_id = act_and_succeed(rt, d, "web-1", T0)
    d.verifier.tick(T0 + timedelta(seconds=70))
    assert d.verifier.tick(T0 + timedelta(seconds=302)) == 1
    got = rt.store.get_run(run_id)
    assert got is not None and got.verification is not None
    assert got.verification.outcome == VerifyOutcome.NOT_VERIFIED
    assert "still failing" in got.verification.reason and "still firing" in got.verification.reason
    assert d.verifier.tick(T0 + timedelta(seconds=303)) == 0  # decided once
    d.decide(T0 + timedelta(seconds=304))
    d.decide(T0 + timedelta(seconds=305))
    d.decide(T0 + timedelta(seconds=306))
    codes = sorted(x.code for x in rt.store.list_decisions())
    assert codes == ["act", "not_verified_before", "on_not_verified"]
    escalation = [r for r in rt.store.list_runs() if r.id != run_id]
    assert [r.action["log"]["message"] for r in escalation] == [f"run {run_id} did not fix web-1"]
    assert outcomes(rt)["not_verified"] == 1.0


def test_missing_data_through_the_deadline_is_unknown_never_not_verified(loop: Any) -> None:
    rt, d = loop
    rt.set_rules([rule(verify={"after": "1m", "within": "5m", "check": {"promql": 'up{host="{{ labels.host }}"}'}})])

    def down(_expr: str) -> list[tuple[dict[str, str], float]]:
        raise SourceError("Prometheus at http://127.0.0.1:1 unreachable: ConnectionError")

    d.verifier = Verifier(rt, query=down)
    run_id = act_and_succeed(rt, d, "web-1", T0)
    d.verifier.tick(T0 + timedelta(seconds=70))
    d.verifier.tick(T0 + timedelta(seconds=302))
    got = rt.store.get_run(run_id)
    assert got is not None and got.verification is not None
    assert got.verification.outcome == VerifyOutcome.UNKNOWN and "unreachable" in got.verification.reason
    d.decide(T0 + timedelta(seconds=303))
    assert [x.code for x in rt.store.list_decisions()] == ["act"]  # unknown: no escalation, no skip


def test_promql_outcomes_from_what_the_query_returns(loop: Any) -> None:
    rt, d = loop
    rt.set_rules(
        [rule(verify={"after": "1m", "within": "5m", "check": {"promql": 'up{host="{{ labels.host }}"} == 1'}})]
    )
    answers: dict[str, list[tuple[dict[str, str], float]]] = {}
    d.verifier = Verifier(rt, query=lambda expr: answers[expr])
    first = act_and_succeed(rt, d, "web-1", T0)
    second = act_and_succeed(rt, d, "web-2", T0)
    answers['up{host="web-1"} == 1'] = [({"host": "web-1"}, 1.0)]
    answers['up{host="web-2"} == 1'] = []
    d.verifier.tick(T0 + timedelta(seconds=70))
    d.verifier.tick(T0 + timedelta(seconds=400))
    by_id = {r.id: r.verification for r in rt.store.list_runs()}
    assert by_id[first] is not None and by_id[first].outcome == VerifyOutcome.VERIFIED
    assert by_id[second] is not None and by_id[second].outcome == VerifyOutcome.NOT_VERIFIED
    assert "no samples" in by_id[second].reason


def test_two_not_verified_of_the_last_three_demote_the_rule_until_restored(loop: Any) -> None:
    rt, d = loop
    rt.set_rules([rule(on_not_verified=None, min_success={"of_last": 3, "verified": 2})])
    for i, host in enumerate(("web-1", "web-2")):
        at = T0 + timedelta(seconds=i)
        act_and_succeed(rt, d, host, at)
    d.verifier.tick(T0 + timedelta(seconds=70))
    d.verifier.tick(T0 + timedelta(seconds=400))
    demoted = [e for e in rt.store.audit_entries(limit=100) if e["kind"] == "rule_demoted"]
    assert len(demoted) == 1 and demoted[0]["event"]["rule"] == "fix"
    assert "min_success 2 of the last 3" in demoted[0]["event"]["reason"]
    # The next finding is decided, and waits for approval.
    alert(rt, "web-3", at=T0 + timedelta(seconds=401))
    d.decide(T0 + timedelta(seconds=401))
    [held] = rt.store.list_runs(status=str(RunStatus.AWAITING_APPROVAL))
    decision = rt.store.get_decision(held.decision_id)
    assert decision is not None and "rule demoted" in decision.reason
    rt.store.restore_rule("fix", T0 + timedelta(seconds=402), by="test")
    alert(rt, "web-4", at=T0 + timedelta(seconds=403))
    d.decide(T0 + timedelta(seconds=403))
    assert len(rt.store.list_runs(status=str(RunStatus.AWAITING_APPROVAL))) == 1
    assert [e["kind"] for e in rt.store.audit_entries(limit=5)].count("rule_restored") == 1


def test_a_restart_resumes_pending_verifications(loop: Any) -> None:
    rt, d = loop
    rt.set_rules([rule()])
    run_id = act_and_succeed(rt, d, "web-1", T0)
    with StateStore(rt.settings.state_url) as again:
        [p] = again.due_verifications(T0 + timedelta(seconds=61))
        assert p.run_id == run_id and p.finding_id
    dry = rule(name="dry", guards={"dry_run": True})
    rt.set_rules([dry])
    act_and_succeed(rt, d, "web-9", T0)
    assert [p.rule for p in rt.store.due_verifications(T0 + timedelta(hours=1))] == ["fix"]  # no dry-run verify


def test_the_decisions_metric_counts_what_the_store_recorded(loop: Any) -> None:
    rt, d = loop
    rt.set_rules([rule(verify=None, on_not_verified=None)])
    alert(rt, "web-1")
    d.decide(T0)
    d.decide(T0)
    value = rt.metrics.registry.get_sample_value("aiopsd_decisions_total", {"outcome": "act", "code": "act"})
    assert value == 1.0
    assert [x.outcome for x in rt.store.list_decisions()] == [Outcome.ACT]
    assert SkipReason.NOT_VERIFIED_BEFORE.label.startswith("not verified before")


def test_score_below_counts_consecutive_new_points_of_the_same_series(loop: Any) -> None:
    from aiopsd.models import Finding, FindingKind

    rt, d = loop
    rt.set_rules(
        [
            rule(
                match={"kind": "anomaly"},
                verify={"after": "10s", "within": "5m", "check": {"score_below": {"points": 3}}},
                on_not_verified=None,
            )
        ]
    )
    series = 'lat{host="a"}'
    for fid, key in (("f-a", series), ("f-gone", 'lat{host="gone"}')):
        rt.store.upsert_findings(
            [
                Finding(
                    id=fid,
                    kind=FindingKind.ANOMALY,
                    source="lat",
                    labels={"host": key},
                    score=3.0,
                    starts_at=T0,
                    last_seen=T0,
                    details={"series": key},
                )
            ]
        )
    d.decide(T0)
    for claim in rt.store.claim_runnable(T0, limit=5, owner=rt.replica):
        rt.store.finish_run(claim.run.id, RunStatus.SUCCEEDED, finished_at=T0, rc=0, output="", owner=rt.replica)
    scores = rt.metrics.scores
    at = T0.timestamp()
    for t, s in ((at + 5, 0.1), (at + 12, 0.5), (at + 14, 1.7), (at + 16, 0.4), (at + 18, 0.3)):
        scores.record_point(series, t, s)  # the point before `after` and the one >= 1 do not count
    d.verifier.tick(T0 + timedelta(seconds=20))
    by_finding = {}
    for r in rt.store.list_runs():
        decision = rt.store.get_decision(r.decision_id)
        assert decision is not None
        by_finding[decision.finding_id] = r.id
    run = rt.store.get_run(by_finding["f-a"])
    assert run is not None and run.verification is not None
    assert run.verification.outcome == VerifyOutcome.PENDING and "2 of 3" in run.verification.reason
    scores.record_point(series, at + 20, 0.2)
    d.verifier.tick(T0 + timedelta(seconds=40))
    run = rt.store.get_run(by_finding["f-a"])
    assert run is not None and run.verification is not None
    assert run.verification.outcome == VerifyOutcome.VERIFIED and "3 consecutive" in run.verification.reason
    d.verifier.tick(T0 + timedelta(seconds=400))
    gone = rt.store.get_run(by_finding["f-gone"])
    assert gone is not None and gone.verification is not None
    assert gone.verification.outcome == VerifyOutcome.UNKNOWN and "not scored" in gone.verification.reason
