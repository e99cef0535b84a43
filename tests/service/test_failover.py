"""Three replicas on one PostgreSQL: kill -9 the leader while it runs an action.

What the on-call person would check afterwards: a follower took the lease, every
alert Alertmanager got a 2xx for is in the store, no action ran twice, and the
action the dead leader was running is shown as interrupted (not silently re-run).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from aiopsd.demo.postgres import Postgres
from aiopsd.store import StateStore
from aiopsd.store import tables as t
from tests.service.helpers import HA_RULE, playbook_dir, post_alert, processes_with
from tests.support import DaemonProcess, start_daemon, wait_for, write_config

TTL = 3.0


def start_replica(root: Path, name: str, pg: Postgres, markers: Path, token: str) -> DaemonProcess:
    work = root / name
    (work / "rules").mkdir(parents=True)
    (work / "rules" / "ha.yaml").write_text(HA_RULE)
    cfg = write_config(
        work,
        state_url=pg.url,
        playbooks_dir=str(playbook_dir(root)),
        ha={"lease_ttl": f"{TTL}s"},
        playbook_vars={"marker_dir": str(markers), "sleep_token": token},
    )
    return start_daemon(cfg, extra_env={"TEST_REPLICA_NAME": name})


def read_lease(pg: Postgres) -> Any:
    store = StateStore(pg.url)
    try:
        with store.read() as conn:
            return conn.execute(select(t.leases)).one()
    finally:
        store.close()


def is_replica_of(holder: str, d: DaemonProcess) -> bool:
    """Replica identities are ``hostname:pid:nonce`` (unique per process start)."""
    return holder.startswith(f"{socket.gethostname()}:{d.proc.pid}:")


def leader_of(replicas: dict[str, DaemonProcess]) -> str | None:
    for name, d in replicas.items():
        if d.proc.poll() is None and d.get("/api/v1/status")["leader"]:
            return name
    return None


def test_kill_9_leader_follower_takes_over_nothing_lost_nothing_twice(tmp_path: Path, postgres: Postgres) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    token = f"aiopsd-ha-{uuid.uuid4().hex}"
    replicas: dict[str, DaemonProcess] = {}
    sent_ok: list[str] = []
    act_ok: list[str] = []
    try:
        replicas["a"] = start_replica(tmp_path, "a", postgres, markers, token)
        assert leader_of(replicas) == "a"
        # A long action, claimed by the only replica there is: the leader.
        assert post_alert(replicas["a"].url, "long", act="yes", sleep="300").status_code == 200
        act_ok.append("long")
        wait_for(lambda: list(markers.glob("started-*-a")), 60, what="the leader to start the long action")
        for name in ("b", "c"):
            replicas[name] = start_replica(tmp_path, name, postgres, markers, token)
        assert leader_of(replicas) == "a"

        stop = threading.Event()

        def send() -> None:
            """Alertmanager-like: each alert goes to some replica; on error, to the next one."""
            i = 0
            while not stop.is_set():
                fp = f"fp-{i}"
                act = i % 20 == 0  # every twentieth alert asks for an action
                names = sorted(replicas)
                for name in names[i % len(names) :] + names[: i % len(names)]:
                    try:
                        r = post_alert(replicas[name].url, fp, **({"act": "yes"} if act else {}))
                    except httpx.HTTPError:
                        continue
                    if r.status_code == 200:
                        sent_ok.append(fp)
                        if act:
                            act_ok.append(fp)
                        break
                i += 1
                time.sleep(0.02)

        sender = threading.Thread(target=send)
        sender.start()
        wait_for(lambda: len(sent_ok) >= 10, 60, 0.1, what="alerts before the kill")
        before_kill = len(sent_ok)
        replicas["a"].proc.send_signal(signal.SIGKILL)
        replicas["a"].proc.wait(10)
        dead_lease = read_lease(postgres)  # the dead leader's last renewal, still valid for a while
        assert is_replica_of(dead_lease.holder, replicas["a"])
        new_leader = wait_for(lambda: leader_of(replicas), 10 * TTL, 0.1, what="a follower to take the lease")
        # Keep alerts flowing to the survivors for a while after the takeover.
        wait_for(lambda: len(sent_ok) >= max(before_kill, 1) + 15, 90, 0.1, what="alerts after the takeover")
        stop.set()
        sender.join(30)
        assert new_leader in ("b", "c")

        survivor = replicas[new_leader]
        store = StateStore(postgres.url)
        try:

            def settled() -> bool:
                runs = store.list_runs(limit=1000)
                return len(runs) == len(act_ok) and all(r.status not in ("pending", "running") for r in runs)

            wait_for(settled, 120, what="every action to finish")
            with store.read() as conn:
                stored = {r.fingerprint for r in conn.execute(select(t.alerts.c.fingerprint))}
                lease = conn.execute(select(t.leases)).one()
            runs = store.list_runs(limit=1000)
            decisions = {d.id: d for d in store.list_decisions(limit=1000)}
            findings = {f.id: f for f in store.list_findings(limit=1000)}
        finally:
            store.close()

        # Zero alerts lost: every 2xx'd alert is stored.
        assert set(sent_ok) <= stored, set(sent_ok) - stored
        # One run per alert that asked for one; none ran twice (one "started" marker per run).
        by_fp = Counter(findings[decisions[r.decision_id].finding_id].details["fingerprint"] for r in runs)
        assert by_fp == Counter(act_ok)
        started = Counter(p.name.split("-")[1] for p in markers.glob("started-*"))
        assert all(n == 1 for n in started.values()), started
        # The long action died with its replica: interrupted, visible, not re-run. Any other run the
        # dead replica had claimed is interrupted too; every other run succeeded, exactly once.
        fp_of = {r.id: findings[decisions[r.decision_id].finding_id].details["fingerprint"] for r in runs}
        interrupted = [r for r in runs if r.status == "interrupted"]
        assert "long" in {fp_of[r.id] for r in interrupted}
        started_on = {p.name.split("-")[1]: p.name.split("-")[2] for p in markers.glob("started-*")}
        for r in interrupted:
            assert "heartbeat expired" in r.error
            assert started_on.get(str(r.id)) == "a", (r.id, started_on)
        others = [r for r in runs if r.status != "interrupted"]
        assert others and all(r.status == "succeeded" for r in others), [(r.id, r.status, r.error) for r in others]
        assert {str(r.id) for r in others} <= {p.name.split("-")[1] for p in markers.glob("done-*")}
        # The lease moved to the survivor only after the dead leader's lease ran out (never two
        # leaders), and within one renewal round after that (database clock, not the test's).
        assert is_replica_of(lease.holder, survivor)
        assert dead_lease.expires_at <= lease.acquired_at <= dead_lease.expires_at + TTL
        assert "now the leader" in survivor.log_text()
        assert "stopped answering: marked interrupted" in survivor.log_text()
    finally:
        for d in replicas.values():
            d.stop(signal.SIGKILL if d.proc.poll() is None and d is replicas.get("a") else signal.SIGTERM)
        for pid in processes_with(token):  # the dead leader's orphaned playbook
            os.kill(pid, signal.SIGKILL)
