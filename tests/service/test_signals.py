"""SIGHUP and SIGTERM on a real daemon process, as systemd or a container runtime sends them."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import httpx
import yaml

from aiopsd.store import StateStore
from tests.service.helpers import playbook_dir, post_alert, processes_with, rules_dir
from tests.support import running_daemon, start_daemon, wait_for, write_config


def metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not on /metrics")


def hup_and_wait(daemon: object, url: str, count_before: float, result: str) -> None:
    daemon.proc.send_signal(signal.SIGHUP)  # type: ignore[attr-defined]
    name = f'aiopsd_config_reloads_total{{result="{result}"}}'
    wait_for(lambda: metric_or_zero(url, name) > count_before, 10, 0.1, what=f"a reload ({result})")


def metric_or_zero(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_sighup_broken_rules_keep_the_running_set_then_a_fix_applies(tmp_path: Path) -> None:
    rules = rules_dir(tmp_path, name="first-rule")
    cfg = write_config(tmp_path, playbooks_dir=str(playbook_dir(tmp_path)), rules_dir=str(rules))
    with running_daemon(cfg) as daemon:
        url = daemon.url
        assert [r["name"] for r in daemon.get("/api/v1/status")["rules"]] == ["first-rule"]

        (rules / "broken.yaml").write_text(
            "rules:\n  - name: broken\n    match: {kind: alert}\n"
            "    action: {playbook: slow.yml}\n    guards: {cooldwn: 5m}\n"
        )
        hup_and_wait(daemon, url, 0, "error")
        status = daemon.get("/api/v1/status")
        assert "broken.yaml" in status["config_error"] and "cooldwn" in status["config_error"]
        assert [r["name"] for r in status["rules"]] == ["first-rule"]  # the running set is kept
        assert metric(url, "aiopsd_config_last_reload_ok") == 0
        assert "reload rejected" in daemon.log_text()
        assert "cooldwn" in daemon.log_text()

        (rules / "broken.yaml").write_text(
            "rules:\n  - name: second-rule\n    match: {kind: alert}\n"
            "    action: {playbook: slow.yml}\n    guards: {cooldown: 5m}\n"
        )
        raw = yaml.safe_load(cfg.read_text())
        raw["log_level"] = "DEBUG"
        raw["listen"] = "127.0.0.1:1"  # cannot move a bound socket: needs a restart
        cfg.write_text(yaml.safe_dump(raw))
        hup_and_wait(daemon, url, 0, "ok")
        status = daemon.get("/api/v1/status")
        assert status["config_error"] == ""
        assert sorted(r["name"] for r in status["rules"]) == ["first-rule", "second-rule"]
        assert status["restart_needed"] == ["listen"]
        assert metric(url, "aiopsd_config_last_reload_ok") == 1
        assert metric(url, "aiopsd_config_restart_needed") == 1
        assert "need a restart to take effect: listen" in daemon.log_text()
        assert "log level DEBUG" in daemon.log_text()


def test_sigterm_503s_webhooks_cancels_the_slow_playbook_and_exits_0(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    token = f"aiopsd-test-{uuid.uuid4().hex}"
    cfg = write_config(
        tmp_path,
        playbooks_dir=str(playbook_dir(tmp_path)),
        rules_dir=str(rules_dir(tmp_path)),
        actions={"shutdown_grace": "3s"},
        playbook_vars={"marker_dir": str(markers), "sleep_seconds": 300, "sleep_token": token},
    )
    daemon = start_daemon(cfg)
    try:
        assert post_alert(daemon.url, "slow-1").status_code == 200
        wait_for(lambda: list(markers.glob("started-*")), 60, what="the playbook to start")
        wait_for(lambda: processes_with(token), 30, 0.2, what="the playbook's long task")
        run = daemon.get("/api/v1/actions")[0]
        assert run["status"] == "running"

        daemon.proc.send_signal(signal.SIGTERM)
        # While the running action gets its grace, the webhook says 503 (Alertmanager retries).
        answer = wait_for(lambda: _status_or_none(daemon.url), 5, 0.05, what="a 503 from the webhook")
        assert answer == 503
        assert daemon.proc.wait(30) == 0
    finally:
        daemon.stop(signal.SIGKILL)
    assert processes_with(token) == []  # the playbook's process tree is gone
    assert not list(markers.glob("done-*"))
    store = StateStore(yaml.safe_load(cfg.read_text())["state_url"])
    try:
        [after] = store.list_runs()
        assert after.id == run["id"]
        assert after.status == "canceled"
        assert "canceled" in after.error
    finally:
        store.close()
    log = daemon.log_text()
    assert "shutdown deadline: canceling action" in log
    assert "aiopsd stopped" in log


def _status_or_none(url: str) -> int | None:
    try:
        code = post_alert(url, f"late-{time.monotonic_ns()}").status_code
    except httpx.HTTPError:
        return None
    return code if code == 503 else None
