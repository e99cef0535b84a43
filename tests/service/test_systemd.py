"""The systemd unit verifies, and a real daemon speaks sd_notify to a socket the test listens on."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import REPO, start_daemon, write_config

UNIT = REPO / "deploy" / "systemd" / "aiopsd.service"


def directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def verify(unit_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # systemd-analyze checks that ExecStart exists: point it at this venv's aiopsd.
    aiopsd = Path(sys.executable).parent / "aiopsd"
    path = tmp_path / "aiopsd.service"
    path.write_text(unit_text.replace("/opt/aiopsd/bin/aiopsd", str(aiopsd)))
    return subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, check=False)


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze not installed (make system-deps installs the Debian systemd package)",
)
def test_unit_file_verifies_cleanly_and_a_typo_does_not(tmp_path: Path) -> None:
    text = UNIT.read_text()
    result = verify(text, tmp_path)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
    broken = verify(text.replace("Type=notify", "Type=notfy"), tmp_path)
    assert "notfy" in broken.stderr  # the check does read the file


def test_unit_file_is_a_hardened_notify_service() -> None:
    d = directives(UNIT.read_text())
    assert d["Type"] == ["notify"]
    assert int(d["WatchdogSec"][0]) > 0
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert d["DynamicUser"] == ["yes"] and d["StateDirectory"] == ["aiopsd"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices"):
        assert d[key] == ["yes"], key
    assert d["ProtectSystem"] == ["strict"]
    # Ansible must be able to write somewhere under ProtectSystem=strict: the state directory.
    env = dict(v.split("=", 1) for v in d["Environment"])
    assert env["ANSIBLE_LOCAL_TEMP"].startswith("/var/lib/aiopsd/")
    assert "AF_UNIX" in d["RestrictAddressFamilies"][0]  # sd_notify needs it
    # The stop timeout leaves room for the default 30s action grace.
    assert int(d["TimeoutStopSec"][0]) > 30


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[dict[str, str]] = []

    def wait(self, key: str, value: str, timeout: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            msg = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append(msg)
            if msg.get(key) == value:
                return msg
        raise AssertionError(f"no {key}={value} within {timeout}s; got {self.messages}")


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    # AF_UNIX paths are limited to 108 bytes: pytest's tmp_path can be longer.
    short = Path(f"/tmp/aiopsd-notify-{os.getpid()}-{time.monotonic_ns()}.sock")
    ns = NotifySocket(short)
    yield ns
    ns.sock.close()
    short.unlink(missing_ok=True)


def test_daemon_speaks_sd_notify_ready_watchdog_reload_stopping(tmp_path: Path, notify_socket: NotifySocket) -> None:
    (tmp_path / "rules").mkdir()
    cfg = write_config(tmp_path)
    daemon = start_daemon(cfg, extra_env={"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "1000000"})
    try:
        ready = notify_socket.wait("READY", "1", 30)
        assert ready["MAINPID"] == str(daemon.proc.pid)
        assert "serving on" in ready["STATUS"]
        # READY=1 is only sent once the API answers.
        assert httpx.get(f"{daemon.url}/-/healthy", timeout=5).status_code == 200
        notify_socket.wait("WATCHDOG", "1", 10)
        notify_socket.wait("WATCHDOG", "1", 10)  # keeps pinging from the scheduler loop
        daemon.proc.send_signal(signal.SIGHUP)
        notify_socket.wait("RELOADING", "1", 10)
        notify_socket.wait("READY", "1", 10)
        daemon.proc.send_signal(signal.SIGTERM)
        stopping = notify_socket.wait("STOPPING", "1", 10)
        assert "draining" in stopping["STATUS"]
        assert daemon.proc.wait(30) == 0
    finally:
        daemon.stop(signal.SIGKILL)


def test_no_watchdog_pings_without_watchdog_usec(tmp_path: Path, notify_socket: NotifySocket) -> None:
    (tmp_path / "rules").mkdir()
    daemon = start_daemon(write_config(tmp_path), extra_env={"NOTIFY_SOCKET": str(notify_socket.path)})
    try:
        notify_socket.wait("READY", "1", 30)
        with pytest.raises(AssertionError):
            notify_socket.wait("WATCHDOG", "1", 2)
    finally:
        assert daemon.stop() == 0
