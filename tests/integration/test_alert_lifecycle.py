"""Alert identity and lifecycle through a real Alertmanager into the real daemon process.

Alerts are posted to Alertmanager's API v2 (as Prometheus would), and Alertmanager
delivers them to the daemon's webhook on its own schedule: a short resolve_timeout
resolves an alert nobody re-sends, two unclustered Alertmanagers stand for an HA pair,
and send_resolved: false loses every resolve.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from aiopsd.demo import stack
from tests.support import DaemonProcess, running_daemon, wait_for, write_config


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def post_alert(am: stack.Service, starts_at: float, **labels: str) -> None:
    body = [
        {
            "labels": {"alertname": "DiskFull", **labels},
            "annotations": {"summary": "disk full"},
            "startsAt": _iso(starts_at),
            "generatorURL": "http://prom/graph",
        }
    ]
    httpx.post(f"{am.url}/api/v2/alerts", json=body, timeout=5).raise_for_status()


def write_rules(workdir: Path, **rule: Any) -> None:
    (workdir / "rules").mkdir(exist_ok=True)
    (workdir / "rules" / "alerts.yaml").write_text(
        yaml.safe_dump(
            {
                "rules": [
                    {
                        "name": "page-on-disk",
                        "match": {"kind": "alert", "labels": {"alertname": "DiskFull"}},
                        "action": {"notify": {"message": "disk full on {{ labels.host }}"}},
                        **rule,
                    }
                ]
            }
        )
    )


def alert_findings(daemon: DaemonProcess) -> list[dict[str, Any]]:
    return [
        f
        for f in daemon.get("/api/v1/findings", params={"kind": "alert"})
        if f["labels"].get("alertname") == "DiskFull"
    ]


def acts(daemon: DaemonProcess) -> list[dict[str, Any]]:
    return [d for d in daemon.get("/api/v1/decisions") if d["outcome"] == "act"]


def test_refire_after_auto_resolve_with_the_same_starts_at_is_a_new_episode_and_acts(tmp_path: Path) -> None:
    port = stack.free_port()
    am = stack.start_alertmanager(
        tmp_path / "am",
        webhook_url=f"http://127.0.0.1:{port}/api/v1/alerts",
        group_wait="0s",
        group_interval="1s",
        resolve_timeout="3s",
    )
    write_rules(tmp_path)
    cfg = write_config(tmp_path, listen=f"127.0.0.1:{port}")
    starts = time.time() - 30
    with stack.stopping(am), running_daemon(cfg) as daemon:
        post_alert(am, starts, host="db1")
        wait_for(lambda: len(acts(daemon)) == 1, 30, what="the first episode's action")
        # Nobody re-sends it: Alertmanager resolves it after resolve_timeout and says so.
        wait_for(lambda: [f["status"] for f in alert_findings(daemon)] == ["resolved"], 30, what="the auto-resolve")
        # The problem is back; Alertmanager fires it again with the same startsAt.
        post_alert(am, starts, host="db1")
        found = wait_for(lambda: (fs := alert_findings(daemon)) and len(fs) == 2 and fs, 30, what="a second episode")
        assert sorted(f["status"] for f in found) == ["firing", "resolved"]
        wait_for(lambda: len(acts(daemon)) == 2, 30, what="the second episode's action")
        runs = wait_for(
            lambda: (
                (rs := daemon.get("/api/v1/actions"))
                and all(r["status"] == "succeeded" for r in rs)
                and len(rs) == 2
                and rs
            ),
            30,
            what="both runs to succeed",
        )
        assert {r["decision_id"] for r in runs} == {d["id"] for d in acts(daemon)}
        # Every delivery is on record; the re-fire was not answered as a duplicate.
        firing = [a for a in daemon.get("/api/v1/alerts") if a["status"] == "firing"]
        assert len(firing) == 2 and len({a["starts_at"] for a in firing}) == 1, firing
        assert len({a["finding_id"] for a in firing}) == 2


def test_ha_pair_delivering_one_fingerprint_with_different_starts_at_is_one_finding_and_one_action(
    tmp_path: Path,
) -> None:
    port = stack.free_port()
    hook = f"http://127.0.0.1:{port}/api/v1/alerts"
    am1 = stack.start_alertmanager(tmp_path / "am1", webhook_url=hook, group_wait="0s", group_interval="1s")
    am2 = stack.start_alertmanager(tmp_path / "am2", webhook_url=hook, group_wait="0s", group_interval="1s")
    write_rules(tmp_path)
    cfg = write_config(tmp_path, listen=f"127.0.0.1:{port}")
    now = time.time()
    with stack.stopping(am1, am2), running_daemon(cfg) as daemon:
        # Two Prometheus replicas evaluate the same rule a few seconds apart.
        post_alert(am1, now - 20, host="db1")
        post_alert(am2, now - 13, host="db1")
        wait_for(
            lambda: len({a["starts_at"] for a in daemon.get("/api/v1/alerts")}) == 2,
            30,
            what="both Alertmanagers' deliveries",
        )
        wait_for(lambda: [r["status"] for r in daemon.get("/api/v1/actions")] == ["succeeded"], 30, what="the action")
        time.sleep(3)  # a second action would have been decided by now (dispatch every 0.5 s)
        assert len(alert_findings(daemon)) == 1
        assert len(acts(daemon)) == 1
        assert len(daemon.get("/api/v1/actions")) == 1
        # Both resolve; the finding resolves once.
        for am, starts in ((am1, now - 20), (am2, now - 13)):
            body = [
                {
                    "labels": {"alertname": "DiskFull", "host": "db1"},
                    "startsAt": _iso(starts),
                    "endsAt": _iso(time.time() - 1),
                }
            ]
            httpx.post(f"{am.url}/api/v2/alerts", json=body, timeout=5).raise_for_status()
        wait_for(lambda: [f["status"] for f in alert_findings(daemon)] == ["resolved"], 30, what="the resolve")
        assert len(acts(daemon)) == 1


def test_alert_whose_resolve_never_comes_expires_and_is_not_acted_on_later(tmp_path: Path) -> None:
    port = stack.free_port()
    am = stack.start_alertmanager(
        tmp_path / "am",
        webhook_url=f"http://127.0.0.1:{port}/api/v1/alerts",
        group_wait="0s",
        group_interval="1s",
        resolve_timeout="2s",
        send_resolved=False,
    )
    # The rule waits 8 s after startsAt; the finding expires 3 s after its last delivery.
    write_rules(tmp_path, **{"for": "8s"})
    cfg = write_config(tmp_path, listen=f"127.0.0.1:{port}", alerts={"max_age": "3s"})
    with stack.stopping(am), running_daemon(cfg) as daemon:
        post_alert(am, time.time(), host="db1")
        wait_for(lambda: len(alert_findings(daemon)) == 1, 20, what="the delivery")
        [finding] = wait_for(
            lambda: (fs := alert_findings(daemon)) and fs[0]["status"] == "resolved" and fs,
            20,
            what="the finding to expire",
        )
        assert finding["resolution"] == "expired"
        time.sleep(8)  # past the rule's for: 8s — a finding still firing would act now
        assert acts(daemon) == []
        assert daemon.get("/api/v1/actions") == []
        detail = daemon.get(f"/api/v1/findings/{finding['id']}")
        assert detail["finding"]["status"] == "resolved"
        assert "expired" in daemon.log_text()
