"""Faults on the real daemon: hanging and failing playbooks, dry run, a full state disk, Prometheus down.

Each test breaks something for real (a playbook that never returns, one that always
fails, a filesystem with no space left, a stopped Prometheus) and checks what an
on-call person would see in the API, /metrics and on the machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from aiopsd.demo import stack
from tests.support import REPO, DaemonProcess, alert, payload, running_daemon, tool_env, wait_for, write_config

PLAYBOOKS = REPO / "tests" / "playbooks"


def post(d: DaemonProcess, *alerts: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{d.url}/api/v1/alerts", json=payload(*alerts), timeout=30)


def procs_with(text: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if text.encode() in fh.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


def runs_of(d: DaemonProcess, rule: str) -> list[dict[str, Any]]:
    return [r for r in d.get("/api/v1/actions?limit=1000") if r["rule"] == rule]


def test_playbook_faults_timeout_retries_circuit_and_dry_run(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    tag = f"hang{os.getpid()}"
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "faults.yaml").write_text(
        yaml.safe_dump(
            {
                "rules": [
                    {
                        "name": "hang",
                        "match": {"kind": "alert", "labels": {"alertname": "Hang"}},
                        "action": {"playbook": "hang.yml", "targets": "localhost", "extra_vars": {"tag": tag}},
                        # Long enough for ansible-playbook to reach the task on a loaded machine (at 4s it
                        # sometimes timed out before the child existed, so the test proved nothing).
                        "guards": {"timeout": "20s"},
                    },
                    {
                        "name": "flaky",
                        "match": {"kind": "alert", "labels": {"alertname": "Flaky"}},
                        "action": {
                            "playbook": "fail.yml",
                            "targets": "localhost",
                            "extra_vars": {"marker_dir": str(markers), "incident": "{{ labels.n }}"},
                        },
                        "guards": {
                            "retries": 2,
                            "retry_backoff": "1s",
                            "circuit_breaker": {"failures": 1, "reset_after": "1h"},
                        },
                    },
                    {
                        "name": "touch-dry",
                        "match": {"kind": "alert", "labels": {"alertname": "TouchDry"}},
                        "action": {
                            "playbook": "touch.yml",
                            "targets": "localhost",
                            "extra_vars": {"path": str(tmp_path / "dry")},
                        },
                        "guards": {"dry_run": True},
                    },
                    {
                        "name": "touch-real",
                        "match": {"kind": "alert", "labels": {"alertname": "TouchReal"}},
                        "action": {
                            "playbook": "touch.yml",
                            "targets": "localhost",
                            "extra_vars": {"path": str(tmp_path / "real")},
                        },
                    },
                ]
            }
        )
    )
    cfg = write_config(tmp_path, playbooks_dir=str(PLAYBOOKS), actions={"concurrency": 4})
    with running_daemon(cfg) as d:
        assert (
            post(
                d,
                alert("Hang", fingerprint="h"),
                alert("Flaky", fingerprint="f1", n="1"),
                alert("TouchDry", fingerprint="td"),
                alert("TouchReal", fingerprint="tr"),
            ).status_code
            == 200
        )

        # Hanging playbook: killed at its timeout, with everything it spawned.
        wait_for(lambda: procs_with(f"aiopsd-test-{tag}-child"), 60, 0.2, "the hanging playbook's child to start")
        [hang] = wait_for(
            lambda: [r for r in runs_of(d, "hang") if r["status"] == "timed_out"],
            90,
            what="the hanging run to time out",
        )
        assert "timed out after 20s" in hang["error"]
        assert procs_with(f"aiopsd-test-{tag}-child") == []

        # Failing playbook: 3 attempts (1 + 2 retries) with growing backoff, then failed; circuit opens.
        [flaky] = wait_for(
            lambda: [r for r in runs_of(d, "flaky") if r["status"] == "failed"],
            120,
            what="the flaky run to fail for good",
        )
        assert flaky["attempt"] == 3
        attempts = [float(x) for x in (markers / "1.attempts").read_text().split()]
        assert len(attempts) == 3
        assert attempts[1] - attempts[0] >= 1.0 and attempts[2] - attempts[1] >= 2.0  # backoff 1s, then 2s
        assert post(d, alert("Flaky", fingerprint="f2", n="2")).status_code == 200

        def circuit_skip() -> list[dict[str, Any]]:
            return [
                x for x in d.get("/api/v1/decisions?limit=1000") if x["rule"] == "flaky" and x["code"] == "circuit_open"
            ]

        [skip] = wait_for(circuit_skip, 30, what="a circuit_open skip")
        assert skip["outcome"] == "skip" and "1 consecutive failed runs" in skip["reason"]
        time.sleep(2)
        assert len(runs_of(d, "flaky")) == 1 and not (markers / "2.attempts").exists()
        # The operator resets the circuit: the still-firing finding acts now.
        r = subprocess.run(
            [sys.executable, "-m", "aiopsd", "circuit", "reset", "flaky", "--config", str(cfg)],
            env=tool_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert r.returncode == 0, r.stderr
        wait_for((markers / "2.attempts").exists, 60, what="the flaky rule to act again after reset")

        # Dry run: the playbook ran in check mode and changed nothing; the real one did.
        runs = {
            rule: wait_for(
                lambda rule=rule: [x for x in runs_of(d, rule) if x["status"] == "succeeded"],
                90,
                what=f"{rule} to succeed",
            )[0]
            for rule in ("touch-dry", "touch-real")
        }
        assert runs["touch-dry"]["dry_run"] and not runs["touch-real"]["dry_run"]
        assert (tmp_path / "real").read_text() == "touched\n"
        assert not (tmp_path / "dry").exists()
        assert "changed=1" in d.get(f"/api/v1/actions/{runs['touch-dry']['id']}")["run"]["output"]

        audit = d.get("/api/v1/audit?limit=1000")
        assert {"run_id": hang["id"], "status": "timed_out"}.items() <= next(
            e["event"] for e in audit if e["kind"] == "run_finished" and e["event"]["run_id"] == hang["id"]
        ).items()
        assert [e for e in audit if e["kind"] == "circuit_reset" and e["event"]["rule"] == "flaky"]
        metrics = httpx.get(f"{d.url}/metrics", timeout=5).text
        assert 'aiopsd_action_runs_total{kind="playbook",status="timed_out"} 1.0' in metrics
        assert 'aiopsd_decisions_total{code="circuit_open",outcome="skip"} 1.0' in metrics
    r = subprocess.run(
        [sys.executable, "-m", "aiopsd", "audit", "verify", "--config", str(cfg)],
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr


@pytest.fixture
def small_fs(tmp_path: Path) -> Any:
    mnt = tmp_path / "small"
    mnt.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, check=False
        ).returncode
        != 0
    ):
        pytest.skip("needs root and tmpfs mounts to make a small filesystem")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_state_disk_makes_the_webhook_answer_503_never_2xx(tmp_path: Path, small_fs: Path) -> None:
    """State on a 4 MiB tmpfs; fill it with a file; the webhook must answer 503 until space is back."""
    (tmp_path / "rules").mkdir()
    cfg = write_config(tmp_path, state_url=f"sqlite:///{small_fs / 'aiopsd.db'}", state_dir=str(tmp_path / "state"))
    with running_daemon(cfg) as d:
        assert post(d, alert(fingerprint="before")).status_code == 200
        filler = small_fs / "filler"
        with filler.open("wb") as fh:
            try:
                while True:
                    fh.write(b"\0" * 65536)
                    fh.flush()
            except OSError:
                pass
        big = [alert(fingerprint=f"full-{i}", blob="x" * 4000) for i in range(100)]
        codes = [post(d, *big[i : i + 20]).status_code for i in range(0, 100, 20)]
        assert codes and all(c == 503 for c in codes), codes
        assert httpx.get(f"{d.url}/api/v1/status", timeout=10).status_code in (200, 503)
        filler.unlink()
        assert post(d, *big[:20]).status_code == 200
        stored = {a["fingerprint"] for a in d.get("/api/v1/alerts?limit=1000")}
        assert "before" in stored and {f"full-{i}" for i in range(20)} <= stored
        assert not {f"full-{i}" for i in range(20, 100)} & stored  # answered 503: not half-stored either
    shutil.rmtree(tmp_path / "state", ignore_errors=True)


def test_prometheus_down_gives_no_findings_no_actions_marks_source_down_and_recovers(tmp_path: Path) -> None:
    port = stack.free_port()
    scrape: list[dict[str, object]] = [{"job_name": "self", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}]
    prom = stack.start_prometheus(tmp_path / "prom", scrape=scrape, interval="1s", port=port)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "any.yaml").write_text(
        yaml.safe_dump(
            {
                "rules": [
                    {"name": "any-anomaly", "match": {"kind": "anomaly"}, "action": {"notify": {"message": "anomaly"}}}
                ]
            }
        )
    )
    cfg = write_config(
        tmp_path,
        prometheus={"url": prom.url, "timeout": "2s", "overlap": "2s"},
        watches=[{"name": "selfup", "query": 'up{job="self"}', "step": "1s", "interval": "1s", "lookback": "1m"}],
    )
    try:
        with running_daemon(cfg) as d:

            def source(up: bool) -> Any:
                return [s for s in d.get("/api/v1/status")["sources"] if s["name"] == "selfup" and s["up"] is up]

            wait_for(lambda: source(True), 60, what="the source to be up")
            prom.stop()
            gap_start = time.time()
            [down] = wait_for(lambda: source(False), 60, what="the source to be marked down")
            assert "unreachable" in down["error"]
            assert 'aiopsd_source_up{source="selfup"} 0.0' in httpx.get(f"{d.url}/metrics", timeout=5).text
            time.sleep(4)  # several polls into the gap
            gap_end = time.time()
            findings = d.get("/api/v1/findings?kind=anomaly&limit=1000")
            assert [f for f in findings if gap_start <= _epoch(f["last_seen"]) <= gap_end] == []
            acts = [
                x
                for x in d.get("/api/v1/decisions?outcome=act&limit=1000")
                if gap_start <= _epoch(x["decided_at"]) <= gap_end
            ]
            assert acts == []
            prom = stack.start_prometheus(tmp_path / "prom", scrape=scrape, interval="1s", port=port)
            wait_for(lambda: source(True), 60, what="the source to recover")
            assert 'aiopsd_source_up{source="selfup"} 1.0' in httpx.get(f"{d.url}/metrics", timeout=5).text
    finally:
        prom.stop()


def _epoch(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
