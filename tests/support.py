"""Helpers shared by the integration and e2e tests: run the real daemon as a process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from aiopsd.daemon.metrics import Metrics
from aiopsd.daemon.runner import SourceRunner
from aiopsd.demo.stack import free_port
from aiopsd.models import Finding
from aiopsd.sources.predictions.watch import DriftWatch
from aiopsd.sources.prometheus.watch import PrometheusWatch
from aiopsd.store import StateStore

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"


def tool_env() -> dict[str, str]:
    """Environment for child processes: this checkout's code, the venv's bin on PATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{SRC}{os.pathsep}{env['PYTHONPATH']}" if env.get("PYTHONPATH") else str(SRC)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    return env


@dataclass
class DaemonProcess:
    proc: subprocess.Popen[bytes]
    url: str
    config_path: Path
    log: Path

    def get(self, path: str, **kw: Any) -> Any:
        r = httpx.get(f"{self.url}{path}", timeout=10, **kw)
        r.raise_for_status()
        return r.json()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def write_config(workdir: Path, **overrides: Any) -> Path:
    port = free_port()
    cfg: dict[str, Any] = {
        "listen": f"127.0.0.1:{port}",
        "state_url": f"sqlite:///{workdir / 'state' / 'aiopsd.db'}",
        "state_dir": str(workdir / "state"),
        "rules_dir": str(workdir / "rules"),
        "playbooks_dir": str(REPO / "playbooks"),
        "dispatch_interval": "0.5s",
    }
    cfg.update(overrides)
    path = workdir / "aiopsd.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def start_daemon(
    config_path: Path,
    *,
    ready_timeout: float = 60,
    extra_env: dict[str, str] | None = None,
    prefix: list[str] | None = None,
) -> DaemonProcess:
    """Start ``aiopsd run`` (behind ``prefix``, e.g. ``unshare ...``, when given) and wait until ready."""
    cfg = yaml.safe_load(config_path.read_text())
    url = f"http://{cfg['listen']}"
    log = config_path.parent / "aiopsd.log"
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            [*(prefix or []), sys.executable, "-m", "aiopsd", "run", "--config", str(config_path)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**tool_env(), **(extra_env or {})},
        )
    d = DaemonProcess(proc, url, config_path, log)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited rc={proc.returncode}:\n{d.log_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return d
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    d.stop(signal.SIGKILL)
    raise AssertionError(f"daemon not ready in {ready_timeout}s:\n{d.log_text()[-3000:]}")


@contextmanager
def running_daemon(config_path: Path) -> Iterator[DaemonProcess]:
    d = start_daemon(config_path)
    try:
        yield d
    finally:
        d.stop()


def wait_for(predicate: Any, timeout: float, interval: float = 0.5, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def alert(
    name: str = "HighErrorRate",
    *,
    status: str = "firing",
    fingerprint: str = "f1",
    starts_at: str = "2026-01-01T00:00:00Z",
    **labels: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": name, **labels},
        "annotations": {"summary": f"{name} on {labels.get('instance', 'somewhere')}"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prom/graph",
        "fingerprint": fingerprint,
    }


def payload(*alerts: dict[str, Any], status: str = "firing") -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="x"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "aiopsd",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://am",
        "alerts": list(alerts),
    }


def make_runtime(workdir: Path, **settings: Any) -> Any:
    """A daemon's Runtime (settings, store, metrics, rules from ``workdir/rules``) without its threads."""
    from aiopsd.config import Settings
    from aiopsd.daemon.metrics import Metrics
    from aiopsd.daemon.runtime import Runtime
    from aiopsd.engine import load_rules
    from aiopsd.store import StateStore

    (workdir / "rules").mkdir(exist_ok=True)
    s = Settings(
        **{
            "state_url": f"sqlite:///{workdir / 'state' / 'aiopsd.db'}",
            "state_dir": workdir / "state",
            "rules_dir": workdir / "rules",
            "playbooks_dir": REPO / "playbooks",
            **settings,
        }
    )
    s.state_dir.mkdir(parents=True, exist_ok=True)
    rt = Runtime(
        settings=s, rules=load_rules(s.rules_dir, s.playbooks_dir), store=StateStore(s.state_url), metrics=Metrics()
    )
    rt.ready.set()
    return rt


def run_poll(source: PrometheusWatch | DriftWatch, now: float) -> list[Finding]:
    """One poll as the daemon runs it: through the source runner (findings stored, cursor committed)."""
    assert isinstance(source.store, StateStore) and isinstance(source.metrics, Metrics)
    return SourceRunner(source.store, source.metrics).run(source, now)
