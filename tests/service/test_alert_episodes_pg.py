"""Alert episodes and the decide/resolve race on a real PostgreSQL, with replicas writing at once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from aiopsd.demo.postgres import Postgres
from aiopsd.engine import evaluate
from aiopsd.engine.history import engine_state
from aiopsd.engine.rules import Rule
from aiopsd.models import FindingStatus, Outcome, RunStatus
from aiopsd.sources.alertmanager import IncomingAlert, WebhookAlert
from aiopsd.store import StateStore
from aiopsd.store.audit import AuditChain
from aiopsd.store.findings import resolve

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RULE = Rule.model_validate({"name": "r", "match": {"kind": "alert"}, "action": {"notify": {"message": "x"}}})


def alert(status: str, second: int) -> IncomingAlert:
    return WebhookAlert.model_validate(
        {
            "status": status,
            "labels": {"alertname": "A", "host": "h1"},
            "startsAt": f"2026-01-01T00:00:{second:02d}Z",
            "fingerprint": "fp",
        }
    ).to_incoming()


def test_replicas_receiving_one_fingerprint_at_once_open_one_finding_and_a_refire_opens_the_next(
    postgres: Postgres,
) -> None:
    replicas = [StateStore(postgres.url) for _ in range(2)]
    try:
        gate = threading.Barrier(8)

        def deliver(i: int) -> int:
            gate.wait()
            res = replicas[i % 2].accept_alerts(
                [alert("firing", i % 4)], received_at=T0.timestamp() + i, receiver="x", group_key="g"
            )
            return res.opened

        with ThreadPoolExecutor(8) as pool:
            opened = list(pool.map(deliver, range(8)))
        store = replicas[0]
        assert sum(opened) == 1
        [f] = store.list_findings()
        assert f.status == FindingStatus.FIRING
        assert len([a for a in store.list_alerts() if a["status"] == "firing"]) == 4  # distinct startsAt
        store.accept_alerts([alert("resolved", 0)], received_at=T0.timestamp() + 20, receiver="x", group_key="g")
        again = store.accept_alerts([alert("firing", 0)], received_at=T0.timestamp() + 30, receiver="x", group_key="g")
        assert again.opened == 1
        assert sorted(f.status for f in store.list_findings()) == [FindingStatus.FIRING, FindingStatus.RESOLVED]
    finally:
        for s in replicas:
            s.close()


def test_a_resolve_in_flight_while_the_decision_is_written_means_no_run(postgres: Postgres) -> None:
    leader, webhook = StateStore(postgres.url), StateStore(postgres.url)
    try:
        leader.accept_alerts([alert("firing", 0)], received_at=T0.timestamp(), receiver="x", group_key="g")
        now = T0 + timedelta(seconds=1)
        decisions = evaluate(leader.active_findings(), [RULE], engine_state(leader, [RULE], now, sources_down={}), now)
        assert [d.outcome for d in decisions] == [Outcome.ACT]
        resolving = threading.Event()

        def resolve_slowly() -> None:
            # The webhook replica resolves the finding and commits a moment later.
            with webhook.write() as conn:
                resolve(
                    conn,
                    AuditChain(conn, webhook.dialect),
                    decisions[0].finding_id,
                    now.timestamp(),
                    why="the alert resolved",
                )
                resolving.set()
                time.sleep(1.0)

        t = threading.Thread(target=resolve_slowly)
        t.start()
        assert resolving.wait(10)
        stored = leader.record_decisions(decisions, {"r": RULE})
        t.join()
        assert [d.code for d in stored] == ["resolved_before_act"]
        assert [r for r in leader.list_runs() if r.status != RunStatus.CANCELED] == []
        [d] = leader.list_decisions()
        assert d.code == "resolved_before_act"
    finally:
        leader.close()
        webhook.close()
