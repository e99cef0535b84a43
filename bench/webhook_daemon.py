"""The webhook bench's aiopsd: a daemon on SQLite in a work directory, started and stopped as a process."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.webhook_send import REPO, _env, free_port


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    url: str


def start_daemon(workdir: Path, rules: list[dict[str, Any]], *, port: int | None = None) -> Daemon:
    (workdir / "rules").mkdir(parents=True, exist_ok=True)
    (workdir / "rules" / "bench.yaml").write_text(yaml.safe_dump({"rules": rules}))
    port = port or free_port()
    cfg = workdir / "aiopsd.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "listen": f"127.0.0.1:{port}",
                "state_url": f"sqlite:///{workdir / 'state' / 'aiopsd.db'}",
                "state_dir": str(workdir / "state"),
                "rules_dir": str(workdir / "rules"),
                "playbooks_dir": str(REPO / "tests" / "playbooks"),
                "dispatch_interval": "0.5s",
                "log_level": "WARNING",
                "actions": {"concurrency": 2},
            }
        )
    )
    with (workdir / "aiopsd.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aiopsd", "run", "--config", str(cfg)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_env(),
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited: {(workdir / 'aiopsd.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return Daemon(proc, url)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("daemon not ready in 60s")


def stop(d: Daemon) -> None:
    if d.proc.poll() is None:
        d.proc.send_signal(signal.SIGTERM)
        try:
            d.proc.wait(60)
        except subprocess.TimeoutExpired:
            d.proc.kill()
            d.proc.wait()


def stored_fingerprints(work: Path) -> set[str]:
    db = sqlite3.connect(work / "state" / "aiopsd.db")
    try:
        return {r[0] for r in db.execute("SELECT fingerprint FROM alerts")}
    finally:
        db.close()
