"""Runs on real PostgreSQL: claims, guarded transitions, outages, restarted containers.

The daemon tests run replicas as processes against a PostgreSQL server that is stopped
and started again (an outage or a failover as the replicas see it: connections refused,
then a fresh server). A restarted container is simulated by running the daemon as PID 1
of a fresh PID namespace (``unshare``) with this machine's hostname, twice.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from aiopsd.demo.postgres import Postgres
from aiopsd.models import ActionRun, RunStatus
from aiopsd.store import StateStore
from aiopsd.store.ha import Membership
from tests.service.helpers import HA_RULE, playbook_dir, post_alert, processes_with
from tests.support import DaemonProcess, alert, payload, start_daemon, wait_for, write_config
from tests.unit.store.test_runs import (
    check_finish_never_overwrites_a_run_that_moved_on,
    check_free_target_found_behind_a_busy_queue,
    queue,
)

TTL = 2.0


@pytest.fixture
def pg_store(postgres: Postgres) -> Iterator[StateStore]:
    s = StateStore(postgres.url)
    yield s
    s.close()


# ------------------------------------------------------------------------------ store level
def test_claim_finds_a_free_target_behind_a_long_queue_on_postgresql(pg_store: StateStore) -> None:
    check_free_target_found_behind_a_busy_queue(pg_store)


def test_finish_never_overwrites_a_run_that_moved_on_on_postgresql(pg_store: StateStore) -> None:
    check_finish_never_overwrites_a_run_that_moved_on(pg_store)


def test_after_an_outage_live_peers_get_a_grace_period_before_their_runs_are_orphans(pg_store: StateStore) -> None:
    """Nobody could renew during the outage; the first replica back must not call the others dead."""
    a, b = Membership(pg_store, "a", TTL), Membership(pg_store, "b", TTL)
    a.renew()
    b.renew()
    [run_id] = queue(pg_store, "h1")
    [claim] = pg_store.claim_runnable(datetime.now(UTC), limit=1, owner="b")
    time.sleep(TTL * 1.5)  # the outage: every heartbeat expires, b's included
    assert a.renew().leader
    assert a.interrupt_orphans() == []  # b's heartbeat expired only because nobody could renew
    b.renew()
    deadline = time.monotonic() + TTL * 1.5
    while time.monotonic() < deadline:  # both renew again, a past its grace period
        a.renew()
        b.renew()
        assert a.interrupt_orphans() == []
        time.sleep(TTL / 4)
    run = pg_store.get_run(run_id)
    assert run is not None and run.status == RunStatus.RUNNING
    # Now b really dies: after its heartbeat expires, a (continuously connected) interrupts its run.
    deadline = time.monotonic() + TTL * 3
    found: list[tuple[int, str]] = []
    while not found and time.monotonic() < deadline:
        a.renew()
        found = a.interrupt_orphans()
        time.sleep(TTL / 4)
    assert found == [(run_id, "b")]
    assert claim.run.id == run_id
    interrupted = [e for e in pg_store.audit_entries() if e["kind"] == "run_interrupted"]
    assert [e["event"]["run_id"] for e in interrupted] == [run_id]
    assert pg_store.verify_audit().ok


# ------------------------------------------------------------------------------ daemons
def start_replica(
    root: Path,
    name: str,
    pg: Postgres,
    markers: Path,
    token: str,
    *,
    port: int | None = None,
    prefix: list[str] | None = None,
    concurrency: int = 4,
) -> DaemonProcess:
    work = root / name
    (work / "rules").mkdir(parents=True, exist_ok=True)
    (work / "rules" / "ha.yaml").write_text(HA_RULE)
    extra = {"listen": f"127.0.0.1:{port}"} if port else {}
    cfg = write_config(
        work,
        state_url=pg.url,
        playbooks_dir=str(playbook_dir(root)),
        ha={"lease_ttl": f"{TTL}s"},
        playbook_vars={"marker_dir": str(markers), "sleep_token": token},
        actions={"shutdown_grace": "2s", "concurrency": concurrency},
        **extra,
    )
    return start_daemon(cfg, extra_env={"TEST_REPLICA_NAME": name}, prefix=prefix)


def run_of(store: StateStore, fingerprint: str) -> ActionRun | None:
    """The run acting on the alert with this fingerprint (None before it exists)."""
    for r in store.list_runs(limit=100):
        d = store.get_decision(r.decision_id)
        f = store.get_finding(d.finding_id) if d else None
        if f is not None and f.details.get("fingerprint") == fingerprint:
            return r
    return None


def post_on(url: str, fingerprint: str, instance: str, **labels: str) -> int:
    """An alert for ``instance`` (post_alert names the instance after the fingerprint)."""
    body = payload(alert(fingerprint=fingerprint, instance=instance, act="yes", **labels))
    return httpx.post(f"{url}/api/v1/alerts", json=body, timeout=10).status_code


def metric(d: DaemonProcess, name: str) -> float:
    text = httpx.get(f"{d.url}/metrics", timeout=30).text
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    assert m, f"{name} not in /metrics"
    return float(m.group(1))


@pytest.fixture
def work(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    markers = tmp_path / "markers"
    markers.mkdir()
    token = f"aiopsd-runs-{uuid.uuid4().hex}"
    yield markers, token
    for pid in processes_with(token):
        os.kill(pid, signal.SIGKILL)


def test_result_of_an_action_that_ends_during_a_database_outage_is_stored_when_it_returns(
    tmp_path: Path, postgres: Postgres, work: tuple[Path, str]
) -> None:
    markers, token = work
    d = start_replica(tmp_path, "a", postgres, markers, token)
    store = StateStore(postgres.url, create=False)
    try:
        assert post_alert(d.url, "slow", act="yes", sleep="6").status_code == 200
        wait_for(lambda: list(markers.glob("started-*")), 60, 0.2, what="the action to start")
        postgres.stop()
        wait_for(lambda: list(markers.glob("done-*")), 60, 0.2, what="the action to finish during the outage")
        wait_for(lambda: "could not be stored" in d.log_text(), 30, 0.2, what="the store failure in the log")
        assert metric(d, "aiopsd_action_results_unstored") == 1
        assert metric(d, "aiopsd_action_result_store_errors_total") >= 1
        time.sleep(TTL * 2)  # longer than the lease: a real outage
        postgres.start()
        run = wait_for(
            lambda: (r := run_of(store, "slow")) is not None and r.status.finished and r,
            90,
            0.5,
            what="the run's result to be stored",
        )
        assert run.status == RunStatus.SUCCEEDED, (run.status, run.error)
        assert metric(d, "aiopsd_action_results_unstored") == 0
        assert "result stored after" in d.log_text()
        # The target lock and the slot were released: the next action on the same host runs.
        assert post_on(d.url, "next", "slow") == 200
        nxt = wait_for(
            lambda: (r := run_of(store, "next")) is not None and r.status.finished and r,
            90,
            0.5,
            what="the next run on the same host",
        )
        assert nxt.status == RunStatus.SUCCEEDED
        assert store.verify_audit().ok
    finally:
        store.close()
        d.stop()


def _pid1_prefix() -> list[str]:
    prefix = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL"]
    try:
        ok = subprocess.run([*prefix, "true"], check=False, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        pytest.skip("cannot create a PID namespace here (unshare --pid needs root or user namespaces)")
    return prefix


def test_restarted_container_with_the_same_hostname_and_pid_1_interrupts_its_leftovers(
    tmp_path: Path, postgres: Postgres, work: tuple[Path, str]
) -> None:
    markers, token = work
    prefix = _pid1_prefix()
    first = start_replica(tmp_path, "a", postgres, markers, token, prefix=prefix)
    store = StateStore(postgres.url, create=False)
    second: DaemonProcess | None = None
    try:
        old_name = first.get("/api/v1/status")["replica"]
        assert old_name.split(":")[1] == "1"  # the daemon is PID 1, like in its container image
        assert post_on(first.url, "long", "h1", sleep="300") == 200
        wait_for(lambda: list(markers.glob("started-*")), 60, 0.2, what="the long action to start")
        first.stop(signal.SIGKILL)  # the container dies; everything in its PID namespace with it
        port = int(first.url.rsplit(":", 1)[1])
        second = start_replica(tmp_path, "a", postgres, markers, token, port=port, prefix=prefix)
        new_name = second.get("/api/v1/status")["replica"]
        assert new_name != old_name and new_name.split(":")[:2] == old_name.split(":")[:2]
        run = wait_for(
            lambda: (r := run_of(store, "long")) is not None and r.status.finished and r,
            3 * TTL,
            0.2,
            what="the previous life's run to be marked interrupted",
        )
        assert run.status == RunStatus.INTERRUPTED and "not re-run" in run.error
        assert "previous start" in second.log_text()
        # Its host is free again: a new action on it runs.
        assert post_on(second.url, "again", "h1") == 200
        again = wait_for(
            lambda: (r := run_of(store, "again")) is not None and r.status.finished and r,
            90,
            0.5,
            what="a new action on the same host",
        )
        assert again.status == RunStatus.SUCCEEDED, again.error
        assert not list(markers.glob(f"started-{run.id}-*"))[1:]  # never re-run
    finally:
        store.close()
        first.stop(signal.SIGKILL)
        if second is not None:
            # `unshare --fork` ignores SIGTERM while it waits for its child, so a TERM would only
            # time out (60 s); KILL ends unshare and, by --kill-child, the daemon in its namespace.
            second.stop(signal.SIGKILL)


def test_database_outage_longer_than_the_lease_does_not_interrupt_a_live_peers_run(
    tmp_path: Path, postgres: Postgres, work: tuple[Path, str]
) -> None:
    """Two replicas; the database goes away for longer than lease_ttl while the follower runs an action.

    Whichever replica renews first when the database is back must not call the other dead:
    the follower's run finishes ``succeeded``, is never marked interrupted, and runs once.
    """
    markers, token = work
    a = start_replica(tmp_path, "a", postgres, markers, token, concurrency=1)
    b: DaemonProcess | None = None
    store = StateStore(postgres.url, create=False)
    try:
        assert post_on(a.url, "hold", "h-a", sleep="300") == 200  # fills a's only slot
        wait_for(lambda: list(markers.glob("started-*-a")), 60, 0.2, what="a to start its action")
        b = start_replica(tmp_path, "b", postgres, markers, token)
        assert post_on(b.url, "peer", "h-b", sleep="25") == 200
        wait_for(lambda: list(markers.glob("started-*-b")), 60, 0.2, what="b to claim and start the action")
        postgres.stop()
        time.sleep(TTL * 3)  # every heartbeat and the lease expire on the database clock
        postgres.start()
        run = wait_for(
            lambda: (r := run_of(store, "peer")) is not None and r.status.finished and r,
            120,
            0.5,
            what="b's action to finish",
        )
        assert run.status == RunStatus.SUCCEEDED, (run.status, run.error)
        interrupted = [e["event"]["run_id"] for e in store.audit_entries(limit=1000) if e["kind"] == "run_interrupted"]
        assert run.id not in interrupted
        assert len(list(markers.glob(f"started-{run.id}-*"))) == 1
        assert "stopped answering: marked interrupted" not in a.log_text() + b.log_text()
        assert store.verify_audit().ok
    finally:
        store.close()
        a.stop()
        if b is not None:
            b.stop()
