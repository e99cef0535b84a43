"""The operator's commands: rules test, approve, circuit reset, audit verify."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import update
from typer.testing import CliRunner

from aiopsd.cli import create_app
from aiopsd.engine import evaluate
from aiopsd.engine.history import engine_state
from aiopsd.engine.rules import Rule
from aiopsd.models import RunStatus
from aiopsd.sources.alertmanager import IncomingAlert
from aiopsd.store import StateStore
from aiopsd.store import tables as t

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
runner = CliRunner()


def test_rules_test_replays_fixture_and_prints_each_decision_as_json() -> None:
    r = runner.invoke(
        create_app(),
        ["rules", "test", str(FIXTURES / "rules"), "--findings", str(FIXTURES / "findings.yaml"), "--format", "json"],
    )
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    got = [(x["rule"], x["finding"], x["outcome"], x["code"]) for x in rows]
    assert got[:4] == [
        ("restart-web", "lat-web-1", "act", "act"),
        ("restart-web", "lat-web-1b", "skip", "cooldown"),
        ("restart-web", "lat-web-2", "act", "act"),
        ("restart-web", "lat-web-1", "act", "on_resolved"),
    ]
    # critical + env != staging: one alert acts (held for approval), the staging one does not match.
    alert_rows = [x for x in rows if x["rule"] == "page-on-alert"]
    assert len(alert_rows) == 1 and alert_rows[0]["require_approval"]
    assert all(x["reason"] for x in rows)
    # The incident closed for lack of data gets no on_resolved, and the skip says why.
    web2 = [x for x in rows if x["finding"] == "lat-web-2" and x["code"].startswith("on_resolved")]
    assert [(x["outcome"], x["code"]) for x in web2] == [("skip", "on_resolved_no_data")]
    assert "no data" in web2[0]["reason"]


def test_rules_test_table_and_bad_fixture(tmp_path: Path) -> None:
    r = runner.invoke(
        create_app(), ["rules", "test", str(FIXTURES / "rules"), "--findings", str(FIXTURES / "findings.yaml")]
    )
    assert r.exit_code == 0 and "cooldown" in r.stdout and "decisions" in r.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("findings: [{kind: alert}]\n")
    r = runner.invoke(create_app(), ["rules", "test", str(FIXTURES / "rules"), "--findings", str(bad)])
    assert r.exit_code == 2 and "bad.yaml" in r.stderr and "findings.0.at" in r.stderr


def test_rules_test_shows_the_circuit_opening_after_failed_runs_and_closing_after_reset_after() -> None:
    circuit = FIXTURES / "circuit"
    r = runner.invoke(
        create_app(),
        ["rules", "test", str(circuit / "rules"), "--findings", str(circuit / "findings.yaml"), "--format", "json"],
    )
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [(x["at"][11:16], x["finding"], x["code"]) for x in rows] == [
        ("00:00", "down-db-1", "act"),
        ("00:01", "down-db-2", "act"),
        ("00:02", "down-db-3", "circuit_open"),
        ("00:32", "down-db-3", "act"),
    ]
    assert "2 consecutive failed runs, last at 2026-01-01 00:01:00Z" in rows[2]["reason"]
    assert "aiopsd circuit reset restart-db" in rows[2]["reason"]


def _config(tmp_path: Path, rules: list[dict[str, Any]]) -> tuple[Path, StateStore]:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(yaml.safe_dump({"rules": rules}))
    cfg = tmp_path / "aiopsd.yaml"
    cfg.write_text(yaml.safe_dump({"state_url": "sqlite:///state.db", "rules_dir": "rules", "state_dir": "state"}))
    return cfg, StateStore(f"sqlite:///{tmp_path / 'state.db'}")


def _decide(store: StateStore, rule: Rule) -> None:
    store.accept_alerts(
        [IncomingAlert("fp", "firing", "2026-01-01T00:00:00Z", None, {"alertname": "A"}, {}, None, 0.0)],
        received_at=0.0,
        receiver=None,
        group_key=None,
    )
    now = datetime.now(UTC)
    ds = evaluate(store.active_findings(), [rule], engine_state(store, [rule], now, sources_down={}), now)
    store.record_decisions(ds, {rule.name: rule})


MANUAL: dict[str, Any] = {
    "name": "manual",
    "match": {"kind": "alert"},
    "action": {"notify": {"message": "x"}},
    "guards": {"require_approval": True},
}


def test_approve_cli_writes_to_the_store(tmp_path: Path) -> None:
    cfg, store = _config(tmp_path, [MANUAL])
    _decide(store, Rule.model_validate(MANUAL))
    [run] = store.list_runs()
    r = runner.invoke(create_app(), ["approve", str(run.id), "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    assert store.get_run(run.id).status == RunStatus.PENDING  # type: ignore[union-attr]
    r = runner.invoke(create_app(), ["approve", str(run.id), "--config", str(cfg)])
    assert r.exit_code == 1 and "not awaiting approval (it is pending)" in r.stderr
    assert runner.invoke(create_app(), ["approve", "4242", "--config", str(cfg)]).exit_code == 1
    store.close()


def test_circuit_reset_cli(tmp_path: Path) -> None:
    cfg, store = _config(tmp_path, [MANUAL])
    r = runner.invoke(create_app(), ["circuit", "reset", "manual", "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    assert [e["kind"] for e in store.audit_entries()] == ["circuit_reset"]
    r = runner.invoke(create_app(), ["circuit", "reset", "nope", "--config", str(cfg)])
    assert r.exit_code == 2 and "no rule named 'nope'" in r.stderr
    store.close()


def test_audit_verify_cli_fails_on_a_tampered_row(tmp_path: Path) -> None:
    cfg, store = _config(tmp_path, [MANUAL])
    _decide(store, Rule.model_validate(MANUAL))
    r = runner.invoke(create_app(), ["audit", "verify", "--config", str(cfg)])
    assert r.exit_code == 0 and "intact, 4 entries" in r.stdout
    with store.write() as conn:
        conn.execute(update(t.audit_log).where(t.audit_log.c.seq == 3).values(at=0.5))
    r = runner.invoke(create_app(), ["audit", "verify", "--config", str(cfg)])
    assert r.exit_code == 1 and "at entry 3" in r.stderr
    store.close()


def test_rules_restore_cli_is_audited_and_refuses_an_unknown_rule(tmp_path: Path) -> None:
    cfg, store = _config(tmp_path, [MANUAL])
    r = runner.invoke(create_app(), ["rules", "restore", "manual", "--config", str(cfg)])
    assert r.exit_code == 0 and "restored" in r.stdout, r.output
    [entry] = store.audit_entries()
    assert entry["kind"] == "rule_restored" and entry["event"]["rule"] == "manual"
    assert "manual" in store.rule_restores()
    r = runner.invoke(create_app(), ["rules", "restore", "nope", "--config", str(cfg)])
    assert r.exit_code == 2 and "no rule named 'nope'" in r.stderr
    store.close()


def test_rules_test_shows_verification_escalation_and_demotion() -> None:
    loop = FIXTURES / "closed_loop"
    r = runner.invoke(
        create_app(),
        ["rules", "test", str(loop / "rules"), "--findings", str(loop / "findings.yaml"), "--format", "json"],
    )
    assert r.exit_code == 0, r.output
    rows = [
        (x["at"][11:16], x["finding"], x["code"], x["outcome"], x["require_approval"]) for x in json.loads(r.stdout)
    ]
    assert rows == [
        ("00:00", "api-1", "act", "act", False),
        ("00:01", "api-1", "verification", "verified", False),
        ("00:10", "api-2", "act", "act", False),
        ("00:15", "api-2", "verification", "not_verified", False),
        ("00:15", "api-2", "on_not_verified", "act", False),  # escalated once
        ("00:20", "api-2", "not_verified_before", "skip", False),  # and never retried
        ("00:20", "api-3", "act", "act", False),
        ("00:25", "api-3", "verification", "not_verified", False),
        ("00:25", "api-3", "on_not_verified", "act", False),
        ("00:25", "-", "demoted", "demoted", False),  # 2 of the last 3 not verified
        ("00:40", "api-3", "not_verified_before", "skip", False),
        ("00:40", "api-4", "act", "act", True),  # the next finding waits for approval
    ]
    table = runner.invoke(
        create_app(), ["rules", "test", str(loop / "rules"), "--findings", str(loop / "findings.yaml")]
    )
    assert table.exit_code == 0 and "8 decisions, 3 verification outcomes, 1 demotions" in table.stdout
