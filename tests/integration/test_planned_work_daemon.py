"""Through the real daemon and a real Alertmanager: a silence stops a matching rule; expiring it lets it act.

A maintenance window started with the CLI stops a rule the same way.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import yaml

from aiopsd.demo.stack import start_alertmanager, stopping
from tests.integration.test_silences_alertmanager import create_silence
from tests.receivers import http_receiver
from tests.support import DaemonProcess, alert, payload, running_daemon, tool_env, wait_for, write_config


def codes(d: DaemonProcess) -> list[str]:
    return [x["code"] for x in d.get("/api/v1/decisions")]


def write_rule(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(
        yaml.safe_dump(
            {
                "rules": [
                    {
                        "name": "tell-ops",
                        "match": {"kind": "alert", "labels": {"service": "api"}},
                        "action": {"notify": {"channel": "ops", "message": "act on {{ labels.instance }}"}},
                    }
                ]
            }
        )
    )


def test_a_real_silence_stops_the_rule_and_expiring_it_lets_the_finding_act(tmp_path: Path) -> None:
    write_rule(tmp_path)
    am = start_alertmanager(tmp_path / "am", webhook_url="http://127.0.0.1:9/unused")
    with stopping(am), http_receiver() as ops:
        sid = create_silence(am.url, [{"name": "service", "value": "api", "isRegex": False, "isEqual": True}])
        cfg = write_config(
            tmp_path,
            alertmanager_url=am.url,
            alertmanager_silences={"enabled": True, "ttl": "0.5s"},
            notify_channels={"ops": {"kind": "webhook", "url": ops.url}},
        )
        with running_daemon(cfg) as d:
            r = httpx.post(
                f"{d.url}/api/v1/alerts",
                json=payload(alert(fingerprint="a1", service="api", instance="web-1")),
                timeout=30,
            )
            assert r.status_code == 200
            wait_for(lambda: "silenced" in codes(d), 60, what="a silenced decision")
            (dec,) = d.get("/api/v1/decisions")
            assert f"silence {sid}" in dec["reason"] and ops.requests == []
            assert httpx.delete(f"{am.url}/api/v2/silence/{sid}", timeout=10).status_code == 200
            wait_for(lambda: ops.requests, 60, what="the action once the silence expired")
            assert sorted(codes(d)) == ["act", "silenced"]
    assert ops.requests[0].body["message"] == "act on web-1"


def test_a_cli_maintenance_window_stops_the_rule(tmp_path: Path) -> None:
    write_rule(tmp_path)
    with http_receiver() as ops:
        cfg = write_config(tmp_path, notify_channels={"ops": {"kind": "webhook", "url": ops.url}})
        cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "aiopsd",
                "maintenance",
                "start",
                "--for",
                "1h",
                "--match",
                "service=api",
                "--name",
                "deploy",
                "--config",
                str(cfg),
            ],
            capture_output=True,
            text=True,
            env=tool_env(),
            timeout=120,
            check=False,
        )
        assert cli.returncode == 0, cli.stderr
        with running_daemon(cfg) as d:
            httpx.post(
                f"{d.url}/api/v1/alerts",
                json=payload(
                    alert(fingerprint="a1", service="api", instance="web-1"),
                    alert("Other", fingerprint="a2", service="db", instance="db-1"),
                ),
                timeout=30,
            )
            wait_for(lambda: "maintenance" in codes(d), 60, what="a maintenance decision")
            (dec,) = [x for x in d.get("/api/v1/decisions") if x["code"] == "maintenance"]
            assert dec["reason"].startswith("maintenance deploy until")
            assert ops.requests == []
