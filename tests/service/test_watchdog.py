"""The watchdog ping stops when the dispatch loop stops turning, so systemd restarts a stuck daemon."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import yaml

from aiopsd.config import load_settings
from aiopsd.daemon.service import Daemon
from aiopsd.daemon.systemd import Notifier


def test_watchdog_pings_only_while_dispatch_turns(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    cfg = tmp_path / "aiopsd.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "state_url": "sqlite:///state.db",
                "state_dir": "state",
                "rules_dir": "rules",
                "playbooks_dir": ".",
                "dispatch_interval": "1s",
            }
        )
    )
    sock_path = Path(f"/tmp/aiopsd-wd-{os.getpid()}-{time.monotonic_ns()}.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(sock_path))
    listener.settimeout(0.5)
    daemon = Daemon(load_settings(cfg), str(cfg))
    try:
        daemon.notifier = Notifier({"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "10000000"})
        assert daemon.notifier.watchdog_interval == 5.0
        daemon._dispatch()  # one dispatch tick completes
        daemon._watchdog()
        assert listener.recv(100) == b"WATCHDOG=1"
        daemon._last_dispatch = time.monotonic() - 60  # the loop has not turned for a minute
        daemon._watchdog()
        try:
            got = listener.recv(100)
        except TimeoutError:
            got = b""
        assert got == b""
    finally:
        daemon.runtime.store.close()
        listener.close()
        sock_path.unlink(missing_ok=True)


def test_watchdog_pid_of_another_process_disarms_it() -> None:
    assert (
        Notifier({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}).watchdog_interval is None
    )
    n = Notifier({"NOTIFY_SOCKET": "@abstract", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())})
    assert n.watchdog_interval == 0.5 and n.address == "\0abstract"
    assert Notifier({}).notify("READY=1") is False  # outside systemd: a no-op
