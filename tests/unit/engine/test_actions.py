"""engine/actions.py and actions/executors.py: one registry of action kinds, and everything derived from it."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aiopsd.actions.base import ActionContext
from aiopsd.actions.executors import EXECUTORS, context_for, execute
from aiopsd.config import AWXConfig, Settings
from aiopsd.daemon.http.overview import REASON_LABELS
from aiopsd.engine import EngineState, Rule, evaluate, load_rules
from aiopsd.engine.actions import ACTIONS, LogAction
from aiopsd.errors import ActionError, ConfigError
from aiopsd.models import ActionRun, Finding, FindingKind, FindingStatus, Outcome, RunStatus, SkipReason

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)


def finding(**labels: str) -> Finding:
    return Finding(
        id="f1",
        kind=FindingKind.ALERT,
        source="alertmanager",
        labels=labels,
        starts_at=NOW,
        last_seen=NOW,
        summary="disk full",
    )


def context(tmp_path: Path) -> ActionContext:
    return ActionContext(
        private_dir=tmp_path / "run",
        timeout=10,
        cancel=threading.Event(),
        playbooks_dir=REPO / "playbooks",
        state_dir=tmp_path / "state",
        awx=AWXConfig(),
    )


def run_of(decision_action: dict[str, object], kind: str, *, dry_run: bool = False) -> ActionRun:
    return ActionRun(
        id=7,
        decision_id="d",
        rule="r",
        kind=kind,
        targets=(),
        status=RunStatus.RUNNING,
        created_at=NOW,
        action=decision_action,
        dry_run=dry_run,
    )


def test_schema_and_executor_registries_have_the_same_kinds() -> None:
    assert list(ACTIONS) == list(EXECUTORS)


def test_each_kind_is_registered_under_its_own_kind() -> None:
    for key, model in ACTIONS.items():
        assert model.key() == key
        assert model.model_fields["kind"].default == key


def test_the_loader_error_names_every_kind(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(
        "rules:\n  - name: r\n    match: {}\n    action: {notify: {message: m}, log: {message: m}}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_rules(tmp_path / "rules")
    assert f"an action needs exactly one of: {', '.join(ACTIONS)}" in str(info.value)


@pytest.mark.parametrize(
    ("action", "field"),
    [
        ("{job_template: {extra_vars: {}}}", "action.job_template.id"),
        ("{log: {message: hi, level: loud}}", "action.log.level"),
        ("{silence: {duration: -1}}", "action.silence.duration"),
    ],
)
def test_a_field_error_in_any_kind_names_the_field_without_the_union_tag(
    tmp_path: Path, action: str, field: str
) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(f"rules:\n  - name: r\n    match: {{}}\n    action: {action}\n")
    with pytest.raises(ConfigError) as info:
        load_rules(tmp_path / "rules")
    assert f"field {field!r}" in str(info.value)


def test_an_unknown_kind_cannot_run() -> None:
    with pytest.raises(ActionError, match="cannot run"):
        execute(run_of({}, "teleport"), context(Path("/nonexistent")))


def test_every_skip_reason_has_a_label_and_the_page_uses_it() -> None:
    for reason in SkipReason:
        assert reason.label.strip()  # a reason without its own label raises KeyError here
        assert REASON_LABELS[reason.value] == reason.label
    assert REASON_LABELS["global_rate_budget"] == "global rate budget spent"
    assert REASON_LABELS["on_resolved_circuit_open"].endswith("circuit open")


def test_every_skip_reason_is_in_the_rules_reference() -> None:
    doc = (REPO / "docs" / "rules.md").read_text()
    assert [r.value for r in SkipReason if f"`{r.value}`" not in doc] == []


def test_every_on_resolved_reason_is_a_prefixed_guard() -> None:
    for reason in SkipReason:
        if reason.value.startswith("on_resolved_"):
            assert reason.on_resolved() is reason
    assert SkipReason.MAX_HOSTS.on_resolved() is SkipReason.ON_RESOLVED_MAX_HOSTS


def test_the_context_carries_the_settings_actions_read(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path / "state", playbook_vars={"env": "prod"}, alertmanager_url="http://127.0.0.1:9093"
    )
    ctx = context_for(settings, private_dir=tmp_path / "run", timeout=5, cancel=threading.Event())
    assert (ctx.playbook_vars, ctx.alertmanager_url, ctx.timeout) == ({"env": "prod"}, "http://127.0.0.1:9093", 5)
    assert ctx.model_stores == {} and "PATH" in ctx.env


# ---- the log kind, end to end: its model, its executor and the two registry entries are all it took


def test_a_log_rule_decides_renders_once_and_writes_one_json_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    r = Rule.model_validate(
        {
            "name": "r",
            "match": {"kind": "alert"},
            "action": {
                "log": {
                    "message": "disk on {{ labels.host }}",
                    "level": "warning",
                    "fields": {"team": "{{ labels.team }}"},
                }
            },
        }
    )
    assert isinstance(r.action, LogAction) and r.action.describe() == "disk on {{ labels.host }}"
    hostile = "db-1\nFAKE 00:00 CRITICAL aiopsd: {{ 7*7 }}"
    [d] = evaluate([finding(host=hostile, team="storage")], [r], EngineState(), NOW)
    assert (d.outcome, d.action_kind, d.targets) == (Outcome.ACT, "log", ())
    with caplog.at_level(logging.INFO, logger="aiopsd.actions.log"):
        result = execute(run_of(d.action, "log"), context(tmp_path))
    assert result.status == RunStatus.SUCCEEDED
    [record] = caplog.records
    assert record.levelno == logging.WARNING and record.getMessage() == result.output
    assert "\n" not in result.output, "a label's newline stays inside the JSON string"
    line = json.loads(result.output)
    assert line["event"] == "aiopsd_action_log" and line["rule"] == "r" and line["run_id"] == 7
    assert line["message"] == f"disk on {hostile}", "rendered once: the label's template text is data"
    assert line["fields"] == {"team": "storage"}
    assert line["finding"]["id"] == "f1" and line["finding"]["labels"]["host"] == hostile


def test_a_dry_run_log_writes_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    r = Rule.model_validate({"name": "r", "match": {"kind": "alert"}, "action": {"log": {"message": "m"}}})
    [d] = evaluate([finding()], [r], EngineState(), NOW)
    with caplog.at_level(logging.INFO, logger="aiopsd.actions.log"):
        result = execute(run_of(d.action, "log", dry_run=True), context(tmp_path))
    assert result.status == RunStatus.SUCCEEDED and result.output.startswith("dry run: would log ")
    assert caplog.records == []


# ---- the per-kind guards live on the kind, and hold for an on_resolved action too


def test_a_job_template_without_limit_cannot_hold_max_hosts_on_resolved_either() -> None:
    r = Rule.model_validate(
        {
            "name": "r",
            "match": {"kind": "alert"},
            "guards": {"max_hosts": 1},
            "action": {"notify": {"message": "m"}},
            "on_resolved": {"job_template": {"id": 42}},
        }
    )
    resolved = finding().model_copy(
        update={"status": FindingStatus.RESOLVED, "resolution": "recovered", "last_seen": NOW - timedelta(seconds=1)}
    )
    [d] = evaluate([resolved], [r], EngineState(started=frozenset({("r", "f1")})), NOW)
    assert (d.outcome, d.code) == (Outcome.SKIP, SkipReason.ON_RESOLVED_MAX_HOSTS)
    assert d.reason.startswith("on_resolved: blast radius: no job_template.limit")


def test_a_playbook_whose_targets_render_empty_is_no_targets() -> None:
    r = Rule.model_validate(
        {
            "name": "r",
            "match": {"kind": "alert"},
            "action": {"playbook": "restart_service.yml", "targets": "{{ labels.host }}"},
        }
    )
    [d] = evaluate([finding(host="")], [r], EngineState(), NOW)
    assert (d.outcome, d.code) == (Outcome.SKIP, SkipReason.NO_TARGETS)
