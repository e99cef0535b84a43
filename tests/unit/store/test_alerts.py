"""Alert identity in the store: episodes, HA deliveries, expiry, and the decide/resolve race."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from aiopsd.engine import evaluate
from aiopsd.engine.history import engine_state
from aiopsd.engine.rules import Rule
from aiopsd.models import FindingStatus, Outcome, RunStatus
from aiopsd.sources.alertmanager import IncomingAlert, WebhookAlert
from aiopsd.store import StateStore
from aiopsd.store import tables as t
from aiopsd.store.alerts import AlertBatch

T0 = datetime(2026, 1, 1, tzinfo=UTC)


RULE = Rule.model_validate(
    {"name": "r", "match": {"kind": "alert"}, "action": {"notify": {"message": "{{ labels.host }}"}}}
)


def alert(
    status: str = "firing", starts: str = "2026-01-01T00:00:00Z", ends: str | None = None, fp: str = "fp1"
) -> IncomingAlert:
    return WebhookAlert.model_validate(
        {
            "status": status,
            "labels": {"alertname": "A", "host": "h1"},
            "startsAt": starts,
            "endsAt": ends or "0001-01-01T00:00:00Z",
            "fingerprint": fp,
        }
    ).to_incoming()


def accept(store: StateStore, *alerts: IncomingAlert, at: float = 0.0) -> Any:
    return store.accept_alerts(list(alerts), received_at=T0.timestamp() + at, receiver="x", group_key="g")


def decide(store: StateStore, now: datetime) -> list[Any]:
    state = engine_state(store, [RULE], now, sources_down={})
    decisions = evaluate(store.active_findings(), [RULE], state, now)
    store.record_decisions(decisions, {"r": RULE})
    return decisions


def test_redelivery_is_a_no_op_but_a_refire_after_resolve_with_the_same_starts_at_is_a_new_episode(
    store: StateStore,
) -> None:
    assert accept(store, alert()).opened == 1
    assert accept(store, alert(), at=1).duplicates == 1
    decide(store, T0 + timedelta(seconds=2))
    accept(store, alert("resolved", ends="2026-01-01T00:00:05Z"), at=5)
    refire = accept(store, alert(), at=60)
    assert (refire.accepted, refire.opened) == (1, 1)
    findings = store.list_findings()
    assert sorted(f.status for f in findings) == [FindingStatus.FIRING, FindingStatus.RESOLVED]
    assert {f.status: f.details["episode"] for f in findings} == {FindingStatus.RESOLVED: 1, FindingStatus.FIRING: 2}
    decide(store, T0 + timedelta(seconds=61))
    assert len(store.list_runs()) == 2
    # Redeliveries of the new episode are no-ops again.
    assert accept(store, alert(), at=62).duplicates == 1


def test_one_fingerprint_with_different_starts_at_is_one_finding(store: StateStore) -> None:
    accept(store, alert(starts="2026-01-01T00:00:00Z"))
    second = accept(store, alert(starts="2026-01-01T00:00:07Z"), at=1)
    assert (second.accepted, second.opened) == (1, 0)
    [f] = store.list_findings()
    assert len(f.sightings) == 2
    decide(store, T0 + timedelta(seconds=2))
    assert len(store.list_runs()) == 1
    # Either peer's resolve resolves it; the other's is kept on record and changes nothing.
    accept(store, alert("resolved", starts="2026-01-01T00:00:07Z"), at=10)
    accept(store, alert("resolved", starts="2026-01-01T00:00:00Z"), at=11)
    [f] = store.list_findings()
    assert f.status == FindingStatus.RESOLVED and f.resolution == "recovered"


def test_a_batch_with_two_deliveries_of_one_new_fingerprint_opens_one_finding(store: StateStore) -> None:
    res = accept(store, alert(starts="2026-01-01T00:00:00Z"), alert(starts="2026-01-01T00:00:03Z"))
    assert (res.accepted, res.opened) == (2, 1)
    assert len(store.list_findings()) == 1


def test_alert_not_delivered_for_max_age_expires_and_cancels_its_pending_run(store: StateStore) -> None:
    accept(store, alert())
    decide(store, T0)
    [run] = store.list_runs()
    assert store.expire_alert_findings(T0 + timedelta(seconds=59), max_age=60) == []
    accept(store, alert(starts="2026-01-01T00:00:09Z"), at=30)  # a delivery keeps it alive
    assert store.expire_alert_findings(T0 + timedelta(seconds=80), max_age=60) == []
    [fid] = store.expire_alert_findings(T0 + timedelta(seconds=91), max_age=60)
    f = store.get_finding(fid)
    assert f is not None and f.status == FindingStatus.RESOLVED and f.resolution == "expired"
    assert store.get_run(run.id).status == RunStatus.CANCELED  # type: ignore[union-attr]
    assert decide(store, T0 + timedelta(seconds=92)) == []


def test_alert_with_ends_at_expires_when_it_passes(store: StateStore) -> None:
    accept(store, alert(ends="2026-01-01T00:00:20Z"))
    assert store.expire_alert_findings(T0 + timedelta(seconds=19), max_age=3600) == []
    assert len(store.expire_alert_findings(T0 + timedelta(seconds=21), max_age=3600)) == 1


def test_reordered_resolve_before_firing_leaves_a_finding_that_expires(store: StateStore) -> None:
    accept(store, alert("resolved", ends="2026-01-01T00:00:05Z"))
    accept(store, alert(), at=1)
    assert [f.status for f in store.active_findings()] == [FindingStatus.FIRING]
    assert len(store.expire_alert_findings(T0 + timedelta(seconds=2 + 3600), max_age=3600)) == 1
    assert store.active_findings() == []


def test_a_resolve_committed_between_evaluate_and_record_means_no_run(store: StateStore) -> None:
    accept(store, alert())
    now = T0 + timedelta(seconds=1)
    state = engine_state(store, [RULE], now, sources_down={})
    decisions = evaluate(store.active_findings(), [RULE], state, now)
    assert [d.outcome for d in decisions] == [Outcome.ACT]
    accept(store, alert("resolved"), at=1)  # commits while the dispatcher is between read and write
    stored = store.record_decisions(decisions, {"r": RULE})
    assert [(d.outcome, d.code) for d in stored] == [(Outcome.SKIP, "resolved_before_act")]
    assert store.list_runs() == []
    [d] = store.list_decisions()
    assert (d.outcome, d.code) == (Outcome.SKIP, "resolved_before_act")
    assert "resolved" in d.reason


# --- group commit: several requests in one transaction store what they would store one by one

_DELIVERY = st.tuples(
    st.sampled_from(["fp1", "fp2", "fp3"]),
    st.sampled_from(["firing", "resolved"]),
    st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T00:00:07Z"]),
)


def _batches(spec: list[list[tuple[str, str, str]]]) -> list[AlertBatch]:
    return [
        AlertBatch(
            [alert(status, starts=starts, fp=fp) for fp, status, starts in deliveries],
            received_at=T0.timestamp() + i,
            receiver="x",
            group_key=f"g{i}",
        )
        for i, deliveries in enumerate(spec)
    ]


def _state(store: StateStore) -> tuple[Any, ...]:
    with store.read() as conn:
        alerts = sorted(
            (
                tuple(r)
                for r in conn.execute(
                    select(
                        t.alerts.c.fingerprint,
                        t.alerts.c.status,
                        t.alerts.c.starts_at,
                        t.alerts.c.finding_id,
                        t.alerts.c.received_at,
                        t.alerts.c.group_key,
                    )
                ).all()
            ),
            key=repr,
        )
        findings = sorted(
            conn.execute(
                select(
                    t.findings.c.id,
                    t.findings.c.status,
                    t.findings.c.resolution,
                    t.findings.c.last_seen,
                    t.findings.c.occurrences,
                    t.findings.c.sightings,
                    t.findings.c.resolved_at,
                )
            ).all(),
            key=repr,
        )
        episodes = sorted((tuple(r) for r in conn.execute(select(t.alert_episodes))), key=repr)
        audit = sorted((r.kind, r.event) for r in conn.execute(select(t.audit_log.c.kind, t.audit_log.c.event)))
    return alerts, findings, episodes, audit


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.lists(_DELIVERY, min_size=1, max_size=4), min_size=1, max_size=6),
    st.lists(st.lists(_DELIVERY, min_size=1, max_size=3), min_size=1, max_size=5),
)
def test_a_group_of_batches_stores_what_the_batches_store_one_after_the_other(
    spec: list[list[tuple[str, str, str]]], later: list[list[tuple[str, str, str]]]
) -> None:
    first, second = _batches(spec), _batches(later)
    with (
        StateStore("sqlite://") as grouped,
        StateStore("sqlite://") as one_by_one,
        StateStore("sqlite://") as before_second,
    ):
        settled: dict[int, Any] = {}
        together = grouped.accept_alert_batches(first)
        together += grouped.accept_alert_batches(second, lambda i, r: settled.update({i: r}))
        apart = [one_by_one.accept_alert_batches([b])[0] for b in first + second]
        assert together == apart
        assert _state(grouped) == _state(one_by_one)
        assert grouped.verify_audit().ok
        # A request answered before its group's commit was a no-op against what was committed
        # before the group: alone on that state, it writes nothing either.
        before_second.accept_alert_batches(first)
        for i, r in settled.items():
            assert r == together[len(first) + i] and r.accepted == 0
            assert before_second.accept_alert_batches([second[i]])[0] == r
