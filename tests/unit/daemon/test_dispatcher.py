"""One rule that fails to evaluate does not stop the dispatch tick (issue: a .inf window raised on every tick)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from aiopsd.daemon.dispatcher import Dispatcher
from aiopsd.daemon.runtime import Runtime
from aiopsd.engine.rules import RateBudget, Rule
from aiopsd.models import Outcome
from aiopsd.sources.alertmanager import WebhookAlert


def test_a_failing_rule_is_a_skip_and_the_tick_still_decides_and_starts_the_others(runtime: Runtime) -> None:
    rt = runtime
    good = Rule.model_validate(
        {"name": "good", "match": {"kind": "alert"}, "action": {"notify": {"message": "{{ labels.host }}"}}}
    )
    broken = Rule.model_validate({"name": "broken", "match": {"kind": "alert"}, "action": {"notify": {"message": "x"}}})
    # What `max_per_window: {window: .inf}` was before load-time validation refused it.
    broken = broken.model_copy(
        update={
            "guards": broken.guards.model_copy(
                update={"max_per_window": RateBudget.model_construct(count=1, window=float("inf"))}
            )
        }
    )
    rt.set_rules([broken, good])
    a = WebhookAlert.model_validate(
        {
            "status": "firing",
            "labels": {"alertname": "A", "host": "h1"},
            "startsAt": "2026-01-01T00:00:00Z",
            "fingerprint": "fp",
        }
    ).to_incoming()
    rt.store.accept_alerts([a], received_at=time.time(), receiver="x", group_key="g")
    d = Dispatcher(rt)
    try:
        d.tick(datetime.now(UTC))
        by_rule = {x.rule: x for x in rt.store.list_decisions()}
        assert by_rule["good"].outcome == Outcome.ACT
        assert (by_rule["broken"].outcome, by_rule["broken"].code) == (Outcome.SKIP, "evaluation_error")
        [run] = rt.store.list_runs()
        assert run.rule == "good" and run.started_at is not None  # the same tick went on to start it
        d.tick(datetime.now(UTC))  # and the next tick neither fails nor re-records the skip
        assert len(rt.store.list_decisions()) == 2
    finally:
        d.shutdown(5)
        rt.store.close()
