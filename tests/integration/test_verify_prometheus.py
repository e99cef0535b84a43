"""verify: promql against a real Prometheus (promtool-backfilled): verified, not_verified, and an
outage during the verify window gives unknown, never not_verified. A hostile label stays data."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiopsd.daemon.dispatcher import Dispatcher
from aiopsd.demo import stack
from aiopsd.engine.rules import Rule
from aiopsd.models import RunStatus, VerifyOutcome
from aiopsd.sources.alertmanager import WebhookAlert
from tests.support import make_runtime

CHECK = {"promql": 'app_up{instance="{{ labels.instance }}"} == 1'}
HOSTILE = 'web-1"} or vector(1) or app_up{instance="'
# Quotes of both kinds, a backslash and control characters: Prometheus must parse the query.
ODD = 'it\'s "odd" \\ \x01\t\x1b'


def rule(name: str, alertname: str, within: str) -> Rule:
    return Rule.model_validate(
        {
            "name": name,
            "match": {"kind": "alert", "labels": {"alertname": alertname}},
            "action": {"log": {"message": "restart {{ labels.instance }}"}},
            "verify": {"after": "1m", "within": within, "check": CHECK},
        }
    )


def fire(rt: Any, alertname: str, instance: str, at: datetime) -> None:
    a = WebhookAlert.model_validate(
        {
            "status": "firing",
            "labels": {"alertname": alertname, "instance": instance},
            "startsAt": (at - timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
            "fingerprint": f"{alertname}-{instance}",
        }
    )
    rt.store.accept_alerts([a.to_incoming()], received_at=at.timestamp(), receiver="x", group_key="g")


def test_promql_verify_with_a_real_prometheus_and_an_outage(tmp_path: Path) -> None:
    now = time.time()
    samples = []
    for i in range(0, 900, 15):  # the last 15 minutes: web-1 came back, web-2 and web-3 did not
        t = now - 900 + i
        for instance, value in (("web-1", 1.0), ("web-2", 0.0), ("web-3", 0.0)):
            samples.append(("app_up", {"job": "app", "instance": instance}, value, t))
    stack.backfill(tmp_path / "data", stack.to_openmetrics(samples, {"app_up": "gauge"}), tmp_path)
    prom = stack.start_prometheus(tmp_path / "prom", scrape=[], tsdb_dir=tmp_path / "data")
    rt = make_runtime(tmp_path, prometheus={"url": prom.url, "timeout": 5})
    rt.set_rules([rule("fix", "Down", "5m"), rule("fix-slow", "SlowDown", "20m")])
    d = Dispatcher(rt)
    t0 = datetime.fromtimestamp(now, UTC) - timedelta(seconds=70)  # the runs ended 69 s ago: checks are due
    try:
        for alertname, instance in (
            ("Down", "web-1"),
            ("Down", "web-2"),
            ("Down", HOSTILE),
            ("Down", ODD),
            ("SlowDown", "web-3"),
        ):
            fire(rt, alertname, instance, t0)
        d.decide(t0)
        claims = rt.store.claim_runnable(t0, limit=10, owner=rt.replica)
        assert len(claims) == 5
        by_instance: dict[str, int] = {}
        for c in claims:
            decision = rt.store.get_decision(c.run.decision_id)
            assert decision is not None
            finding = rt.store.get_finding(decision.finding_id)
            assert finding is not None
            by_instance[finding.labels["instance"]] = c.run.id
            ok = rt.store.finish_run(
                c.run.id, RunStatus.SUCCEEDED, finished_at=t0 + timedelta(seconds=1), rc=0, output="", owner=rt.replica
            )
            assert ok

        d.verifier.tick(datetime.now(UTC))  # Prometheus up: web-1 holds, the others fail (no verdict yet)

        def outcome(instance: str) -> Any:
            run = rt.store.get_run(by_instance[instance])
            assert run is not None and run.verification is not None
            return run.verification

        assert outcome("web-1").outcome == VerifyOutcome.VERIFIED
        assert "holds" in outcome("web-1").reason
        assert outcome("web-2").outcome == VerifyOutcome.PENDING
        # The hostile label was escaped into the string: `or vector(1)` never became part of the query.
        assert outcome(HOSTILE).outcome == VerifyOutcome.PENDING
        assert "returned no samples" in outcome(HOSTILE).reason
        assert "returned no samples" in outcome(ODD).reason, outcome(ODD)  # parsed, not rejected
    finally:
        prom.stop()
    # Prometheus is down from here on.
    d.verifier.tick(t0 + timedelta(seconds=305))  # fix's window is over: decided from its last check (it failed)
    assert outcome("web-2").outcome == VerifyOutcome.NOT_VERIFIED
    assert outcome(HOSTILE).outcome == VerifyOutcome.NOT_VERIFIED
    assert outcome("web-3").outcome == VerifyOutcome.PENDING
    assert "unreachable" in outcome("web-3").reason  # fix-slow checked again: missing data
    d.verifier.tick(t0 + timedelta(seconds=1300))  # fix-slow's window is over while Prometheus is down
    got = outcome("web-3")
    assert got.outcome == VerifyOutcome.UNKNOWN, got
    assert "no data to judge" in got.reason and "unreachable" in got.reason
    m = rt.metrics.registry
    assert m.get_sample_value("aiopsd_remediation_outcomes_total", {"rule": "fix", "outcome": "not_verified"}) == 3.0
    assert m.get_sample_value("aiopsd_remediation_outcomes_total", {"rule": "fix-slow", "outcome": "unknown"}) == 1.0
    d.shutdown(1)
    rt.store.close()
