"""Through the real daemon: an Alertmanager alert, a rule with a notify action, a local webhook receiver."""

from __future__ import annotations

from pathlib import Path

import httpx
import yaml

from tests.receivers import http_receiver
from tests.support import alert, payload, running_daemon, wait_for, write_config


def test_a_notify_rule_reaches_the_webhook_and_a_failing_channel_fails_the_run(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "notify.yaml").write_text(
        yaml.safe_dump(
            {
                "rules": [
                    {
                        "name": "tell-ops",
                        "match": {"kind": "alert", "labels": {"alertname": "HighErrorRate"}},
                        "action": {"notify": {"channel": "ops", "message": "errors on {{ labels.instance }}"}},
                    },
                    {
                        "name": "tell-broken",
                        "match": {"kind": "alert", "labels": {"alertname": "DiskFull"}},
                        "action": {"notify": {"channel": "broken", "message": "disk on {{ labels.instance }}"}},
                    },
                ]
            }
        )
    )
    with http_receiver((500, 0), (500, 0)) as broken, http_receiver() as ops:
        cfg = write_config(
            tmp_path,
            notify_channels={
                "ops": {"kind": "webhook", "url": f"{ops.url}/hook"},
                "broken": {"kind": "webhook", "url": broken.url, "retries": 1, "backoff": "0.1s"},
            },
        )
        with running_daemon(cfg) as d:
            r = httpx.post(
                f"{d.url}/api/v1/alerts",
                timeout=30,
                json=payload(
                    alert(fingerprint="a1", instance="web-1"), alert("DiskFull", fingerprint="a2", instance="db-1")
                ),
            )
            assert r.status_code == 200, r.text
            wait_for(lambda: ops.requests, 60, what="the webhook receiver to get the notification")

            def finished() -> list[dict[str, object]] | None:
                runs = d.get("/api/v1/actions")
                done = len(runs) == 2 and all(x["status"] in ("succeeded", "failed") for x in runs)
                return runs if done else None

            runs = wait_for(finished, 60, what="both runs to finish")
    (req,) = ops.requests
    assert req.body["message"] == "errors on web-1" and req.body["rule"] == "tell-ops"
    assert req.body["finding"]["labels"] == {"alertname": "HighErrorRate", "instance": "web-1"}
    by_rule = {x["rule"]: x for x in runs}
    assert by_rule["tell-ops"]["status"] == "succeeded"
    failed = by_rule["tell-broken"]
    assert failed["status"] == "failed"
    assert "HTTP 500" in str(failed["error"]) and "after 2 attempts" in str(failed["error"])
    assert len(broken.requests) == 2
