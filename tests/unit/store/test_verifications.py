"""Verifications in the store: opened with a success, decided once, read back as history, restores.

``check_*`` functions run on SQLite here and on PostgreSQL in tests/service/test_verifications_pg.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiopsd.engine import evaluate
from aiopsd.engine.history import engine_state
from aiopsd.engine.rules import Rule
from aiopsd.models import Finding, FindingKind, RunStatus, VerifyOutcome
from aiopsd.store import StateStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RULE = Rule.model_validate(
    {
        "name": "r",
        "match": {"kind": "anomaly"},
        "action": {"log": {"message": "x"}},
        "verify": {"after": "1m", "within": "5m", "check": {"promql": 'up{host="{{ labels.host }}"}'}},
        "min_success": {"of_last": 2, "verified": 1},
    }
)


def finished_run(store: StateStore, host: str, status: RunStatus = RunStatus.SUCCEEDED) -> int:
    f = Finding(id=f"f-{host}", kind=FindingKind.ANOMALY, source="w", labels={"host": host}, starts_at=T0, last_seen=T0)
    store.upsert_findings([f])
    [d] = evaluate([f], [RULE], engine_state(store, [RULE], T0, sources_down={}), T0)
    store.record_decisions([d], {"r": RULE})
    [claim] = store.claim_runnable(T0, limit=1, owner="me")
    assert store.finish_run(claim.run.id, status, finished_at=T0, rc=0, output="", owner="me")
    return claim.run.id


def check_verifications_round_trip(store: StateStore) -> None:
    first, second = finished_run(store, "a"), finished_run(store, "b")
    finished_run(store, "c", RunStatus.FAILED)  # a failed run is not verified
    assert store.due_verifications(T0 + timedelta(seconds=59)) == []
    due = store.due_verifications(T0 + timedelta(seconds=60))
    assert [p.run_id for p in due] == [first, second]
    assert (
        due[0].plan["check"] == {"promql": 'up{host="a"}'}
        and due[0].deadline == (T0 + timedelta(minutes=5)).timestamp()
    )
    store.record_check(first, "fails", "no samples", T0 + timedelta(seconds=61), {"k": 1})
    [p] = [x for x in store.due_verifications(T0 + timedelta(seconds=62)) if x.run_id == first]
    assert (p.last_check, p.reason, dict(p.progress)) == ("fails", "no samples", {"k": 1})
    at = T0 + timedelta(minutes=6)
    assert store.decide_verification(first, VerifyOutcome.NOT_VERIFIED, "still failing", at)
    assert not store.decide_verification(first, VerifyOutcome.VERIFIED, "late", at)  # decided once
    assert store.decide_verification(second, VerifyOutcome.NOT_VERIFIED, "x", at, demoted="2 of 2")
    state = engine_state(store, [RULE], at + timedelta(seconds=1), sources_down={})
    assert set(state.not_verified) == {("r", "f-a"), ("r", "f-b")}
    assert state.not_verified[("r", "f-a")].run_id == first
    assert "r" in state.demoted
    store.restore_rule("r", at + timedelta(seconds=2), by="test")
    assert engine_state(store, [RULE], at + timedelta(seconds=3), sources_down={}).demoted == {}
    views = store.verifications_for([first, second])
    assert views[first].outcome == VerifyOutcome.NOT_VERIFIED and views[first].check == 'promql: up{host="a"}'
    assert [o for _, o, _ in store.outcome_history("r")] == [VerifyOutcome.NOT_VERIFIED] * 2
    kinds = [e["kind"] for e in store.audit_entries(limit=100)]
    assert kinds.count("verification_opened") == 2 and kinds.count("verification") == 2
    assert kinds.count("rule_demoted") == 1 and kinds.count("rule_restored") == 1
    assert store.verify_audit().ok


def test_verifications_round_trip(store: StateStore) -> None:
    check_verifications_round_trip(store)


def test_retention_removes_the_verifications_of_pruned_runs_only(store: StateStore) -> None:
    from aiopsd.store.retention import prune

    old, kept = finished_run(store, "old"), finished_run(store, "kept")
    f = store.get_finding("f-old")
    assert f is not None
    store.upsert_findings([f.model_copy(update={"status": "resolved", "last_seen": T0 + timedelta(seconds=1)})])
    prune(store, T0 + timedelta(days=40), 30 * 86400.0)
    assert store.get_run(old) is None
    assert set(store.verifications_for([old, kept])) == {kept}  # f-kept still fires: its history stays
