"""Notify channels against local receivers: the bodies a real receiver gets, retries, timeouts, refusals."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from aiopsd.actions.notify import CHANNELS, ChannelConfig, send_notify
from aiopsd.config import Settings
from aiopsd.engine import evaluate
from aiopsd.engine.evaluate import EngineState
from aiopsd.engine.rules import Rule
from aiopsd.models import ActionRun, Finding, FindingKind, FindingStatus, RunStatus
from tests.receivers import http_receiver, smtp_receiver

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOSTILE = "{{ 7*7 }}<!channel>&\r\nBcc: evil@example.com"


def finding(status: FindingStatus = FindingStatus.FIRING, **labels: str) -> Finding:
    return Finding(
        id="f-123",
        kind=FindingKind.ALERT,
        source="alertmanager",
        status=status,
        labels={"alertname": "HighErrorRate", "instance": "web-1", **labels},
        score=1.0,
        starts_at=NOW,
        last_seen=NOW,
        summary="error rate 12%",
    )


def run_for(notify: dict[str, Any], f: Finding | None = None, *, dry_run: bool = False) -> ActionRun:
    """The run the dispatcher would start: the action rendered by the real engine, once."""
    rule = Rule.model_validate({"name": "page-on-errors", "match": {"kind": "alert"}, "action": {"notify": notify}})
    f = f or finding()
    (decision,) = evaluate([f], [rule], EngineState(), NOW)
    return ActionRun(
        id=7,
        decision_id=decision.id,
        rule=rule.name,
        kind="notify",
        targets=(),
        status=RunStatus.RUNNING,
        created_at=NOW,
        action=decision.action,
        dry_run=dry_run,
    )


def channels(**raw: dict[str, Any]) -> dict[str, ChannelConfig]:
    return Settings(notify_channels=raw).notify_channels


def send(run: ActionRun, chans: dict[str, ChannelConfig]) -> Any:
    return send_notify(run, chans, threading.Event())


def test_webhook_gets_the_finding_as_json_data_and_label_templates_stay_literal(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    with http_receiver() as rec:
        chans = channels(ops={"kind": "webhook", "url": f"{rec.url}/hook", "bearer_token_file": str(token)})
        result = send(
            run_for({"message": "errors on {{ labels.instance }}", "channel": "ops"}, finding(instance=HOSTILE)), chans
        )
    assert result.status == RunStatus.SUCCEEDED, result.error
    (req,) = rec.requests
    assert req.path == "/hook" and req.headers["authorization"] == "Bearer s3cret"
    body = req.body
    assert body["message"] == f"errors on {HOSTILE}"  # rendered once: the label's "{{ 7*7 }}" is not 49
    assert body["finding"]["labels"]["instance"] == HOSTILE
    assert body["finding"]["id"] == "f-123" and body["finding"]["kind"] == "alert"
    assert body["rule"] == "page-on-errors" and body["event"] == "trigger" and body["run_id"] == 7
    assert body["dedup_key"] == "aiopsd-f-123"
    assert body["title"] == "alert on alertmanager: error rate 12%"


def test_slack_body_escapes_control_characters(tmp_path: Path) -> None:
    url_file = tmp_path / "slack.url"
    with http_receiver() as rec:
        url_file.write_text(f"{rec.url}/services/T000/B000/XXXX")
        chans = channels(team={"kind": "slack", "url_file": str(url_file), "channel": "#ops"})
        result = send(
            run_for(
                {"message": "check {{ labels.instance }}", "channel": "team"},
                finding(instance="<!channel> & <http://evil|click>"),
            ),
            chans,
        )
    assert result.status == RunStatus.SUCCEEDED, result.error
    (req,) = rec.requests
    assert req.path == "/services/T000/B000/XXXX"
    assert req.body["channel"] == "#ops"
    assert "<!channel>" not in str(req.body) and "&lt;!channel&gt; &amp; &lt;http://evil|click&gt;" in req.body["text"]
    assert req.body["blocks"][0]["type"] == "section"
    assert "XXXX" not in result.output + result.error  # the URL is the secret: never echoed


def test_pagerduty_trigger_then_resolve_share_the_dedup_key(tmp_path: Path) -> None:
    key = tmp_path / "pd.key"
    key.write_text("R0UTINGKEY")
    with http_receiver((202, 0), (202, 0)) as rec:
        chans = channels(
            pd={
                "kind": "pagerduty",
                "routing_key_file": str(key),
                "url": f"{rec.url}/v2/enqueue",
                "client_url": "http://aiopsd.example/status",
            }
        )
        trig = send(
            run_for({"message": "5xx on {{ labels.instance }}", "channel": "pd", "severity": "critical"}), chans
        )
        res = send(
            run_for({"message": "recovered", "channel": "pd", "event": "resolve"}, finding(FindingStatus.FIRING)), chans
        )
    assert trig.status == RunStatus.SUCCEEDED and res.status == RunStatus.SUCCEEDED, (trig.error, res.error)
    t, r = (q.body for q in rec.requests)
    assert rec.requests[0].path == "/v2/enqueue"
    # Events API v2 shape: routing_key, event_action, dedup_key, payload{summary, source, severity}.
    assert t["routing_key"] == "R0UTINGKEY" and t["event_action"] == "trigger"
    assert t["dedup_key"] == "aiopsd-f-123"
    p = t["payload"]
    assert p["summary"] == "alert on alertmanager: error rate 12%: 5xx on web-1"
    assert p["source"] == "web-1" and p["severity"] == "critical"
    assert p["custom_details"]["finding"]["labels"]["alertname"] == "HighErrorRate"
    assert t["client"] == "aiopsd" and t["client_url"] == "http://aiopsd.example/status"
    assert r == {"routing_key": "R0UTINGKEY", "event_action": "resolve", "dedup_key": "aiopsd-f-123"}


def test_5xx_is_retried_with_backoff_then_recorded_as_failed(tmp_path: Path) -> None:
    with http_receiver((503, 0), (502, 0), (500, 0)) as rec:
        chans = channels(ops={"kind": "webhook", "url": rec.url, "retries": 2, "backoff": "0.05s"})
        result = send(run_for({"message": "x", "channel": "ops"}), chans)
    assert len(rec.requests) == 3
    assert result.status == RunStatus.FAILED
    assert "HTTP 500" in result.error and "after 3 attempts" in result.error and "ops" in result.error


def test_5xx_then_success_is_delivered() -> None:
    with http_receiver((503, 0)) as rec:
        chans = channels(ops={"kind": "webhook", "url": rec.url, "retries": 2, "backoff": "0.05s"})
        result = send(run_for({"message": "x", "channel": "ops"}), chans)
    assert result.status == RunStatus.SUCCEEDED and len(rec.requests) == 2
    assert "2 attempt(s)" in result.output


def test_4xx_is_not_retried() -> None:
    with http_receiver((400, 0)) as rec:
        chans = channels(ops={"kind": "webhook", "url": rec.url, "retries": 3, "backoff": "0.05s"})
        result = send(run_for({"message": "x", "channel": "ops"}), chans)
    assert len(rec.requests) == 1
    assert result.status == RunStatus.FAILED and "HTTP 400" in result.error and "receiver says no" in result.error


def test_a_receiver_that_does_not_answer_times_out_and_fails() -> None:
    with http_receiver((200, 2.0), (200, 2.0)) as rec:
        chans = channels(ops={"kind": "webhook", "url": rec.url, "timeout": "0.3s", "retries": 1, "backoff": "0.05s"})
        result = send(run_for({"message": "x", "channel": "ops"}), chans)
    assert len(rec.requests) == 2
    assert result.status == RunStatus.FAILED and "no answer within 0.3s" in result.error


def test_unreachable_receiver_fails_with_the_reason() -> None:
    from aiopsd.demo.stack import free_port

    chans = channels(ops={"kind": "webhook", "url": f"http://127.0.0.1:{free_port()}", "retries": 0})
    result = send(run_for({"message": "x", "channel": "ops"}), chans)
    assert result.status == RunStatus.FAILED and "cannot reach the receiver" in result.error


def test_missing_secret_file_fails_the_run_without_retrying(tmp_path: Path) -> None:
    with http_receiver() as rec:
        chans = channels(pd={"kind": "pagerduty", "routing_key_file": str(tmp_path / "nope"), "url": rec.url})
        result = send(run_for({"message": "x", "channel": "pd"}), chans)
    assert rec.requests == []
    assert result.status == RunStatus.FAILED and "cannot read PagerDuty routing key" in result.error


def test_dry_run_sends_nothing() -> None:
    with http_receiver() as rec:
        chans = channels(ops={"kind": "webhook", "url": rec.url})
        result = send(run_for({"message": "x", "channel": "ops"}, dry_run=True), chans)
    assert rec.requests == [] and result.status == RunStatus.SUCCEEDED and "dry run" in result.output


def test_without_a_channel_notify_only_logs(caplog: pytest.LogCaptureFixture) -> None:
    result = send(run_for({"message": "hello {{ labels.instance }}"}), {})
    assert result.status == RunStatus.SUCCEEDED and result.output == "hello web-1"
    assert "hello web-1" in caplog.text


def test_email_reaches_the_smtp_server_with_headers_that_labels_cannot_forge() -> None:
    with smtp_receiver() as smtp:
        chans = channels(
            mail={
                "kind": "email",
                "host": smtp.host,
                "port": smtp.port,
                "tls": "none",
                "from": "aiopsd@example.com",
                "to": ["oncall@example.com"],
            }
        )
        result = send(
            run_for(
                {
                    "message": "errors on {{ labels.instance }}",
                    "channel": "mail",
                    "title": "{{ labels.instance }} is failing",
                },
                finding(instance=HOSTILE),
            ),
            chans,
        )
    assert result.status == RunStatus.SUCCEEDED, result.error
    ((sender, rcpts, msg),) = smtp.messages
    assert sender == "aiopsd@example.com" and rcpts == ["oncall@example.com"]
    assert msg["Bcc"] is None and "\n" not in str(msg["Subject"])
    assert str(msg["Subject"]).strip().startswith("[aiopsd warning] {{ 7*7 }}<!channel>& Bcc: evil@example.com")
    assert isinstance(msg, EmailMessage)
    text = str(msg.get_content())
    assert "errors on {{ 7*7 }}<!channel>&" in text  # the label's template is text, never rendered
    assert "rule: page-on-errors" in text and "aiopsd-f-123" in text


def test_email_temporary_refusal_is_retried_permanent_is_not() -> None:
    with smtp_receiver("451 try later") as smtp:
        chans = channels(
            mail={
                "kind": "email",
                "host": smtp.host,
                "port": smtp.port,
                "tls": "none",
                "from": "a@example.com",
                "to": ["b@example.com"],
                "backoff": "0.05s",
            }
        )
        ok = send(run_for({"message": "x", "channel": "mail"}), chans)
    assert ok.status == RunStatus.SUCCEEDED and len(smtp.messages) == 1
    with smtp_receiver("554 no thanks", "554 no thanks") as smtp:
        chans = channels(
            mail={
                "kind": "email",
                "host": smtp.host,
                "port": smtp.port,
                "tls": "none",
                "from": "a@example.com",
                "to": ["b@example.com"],
                "backoff": "0.05s",
            }
        )
        bad = send(run_for({"message": "x", "channel": "mail"}), chans)
    assert bad.status == RunStatus.FAILED and "554 no thanks" in bad.error and smtp.script == ["554 no thanks"]


def test_every_registered_channel_refuses_its_secret_inline() -> None:
    for kind, cls in CHANNELS.items():
        for name in cls.secret_fields:
            with pytest.raises(ValueError, match=f"{name} is a secret"):
                Settings(notify_channels={"c": {"kind": kind, name: "hunter2"}})


def test_the_runs_timeout_bounds_every_attempt_and_pause() -> None:
    with http_receiver((200, 2.0), (200, 2.0), (200, 2.0)) as rec:
        chans = channels(ops={"kind": "webhook", "url": rec.url, "timeout": "5s", "retries": 5, "backoff": "1s"})
        result = send_notify(run_for({"message": "x", "channel": "ops"}), chans, threading.Event(), timeout=0.5)
    # One attempt, cut at the run's 0.5s (not the channel's 5s), and no retry that could not finish in time.
    assert len(rec.requests) == 1
    assert result.status == RunStatus.FAILED
    assert "no answer within 0.5s" in result.error and "no time left" in result.error
