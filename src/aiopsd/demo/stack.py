"""Start and stop real Prometheus and Alertmanager processes on free loopback ports.

Used by ``aiopsd demo`` and by the integration tests. Binaries come from the
Debian packages ``prometheus`` and ``prometheus-alertmanager``.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from aiopsd.errors import AiopsdError

logger = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
        if found:
            return found
    raise AiopsdError(f"{names[0]} not found; install the Debian package (make system-deps does it)")


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AiopsdError(f"process for {url} exited with rc={proc.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise AiopsdError(f"{url} did not become ready in {timeout:.0f}s ({last})")


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    workdir: Path
    log: Path
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def to_openmetrics(samples: Iterable[tuple[str, dict[str, str], float, float]], types: dict[str, str]) -> str:
    """OpenMetrics text for promtool backfill: (metric, labels, value, timestamp in seconds)."""
    by_metric: dict[str, list[str]] = {}
    for name, labels, value, ts in samples:
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        by_metric.setdefault(name, []).append(f"{name}{{{inner}}} {value!r} {ts:.3f}")
    lines: list[str] = []
    for name, rows in by_metric.items():
        lines.append(f"# TYPE {name} {types.get(name, 'gauge')}")
        lines.extend(rows)
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def backfill(tsdb_dir: Path, openmetrics: str, workdir: Path) -> None:
    """Write history blocks into a Prometheus TSDB directory with promtool."""
    src = workdir / "backfill.om"
    src.write_text(openmetrics)
    tsdb_dir.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(
        [binary("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(src), str(tsdb_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if res.returncode != 0:
        raise AiopsdError(f"promtool backfill failed: {res.stderr.strip() or res.stdout.strip()}")


def start_prometheus(
    workdir: Path,
    *,
    scrape: list[dict[str, object]],
    rules: dict[str, object] | None = None,
    alertmanager_port: int | None = None,
    interval: str = "2s",
    tsdb_dir: Path | None = None,
    port: int | None = None,
    remote_write_receiver: bool = False,
) -> Service:
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    cfg: dict[str, object] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": scrape,
    }
    if rules:
        (workdir / "rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
        cfg["rule_files"] = [str(workdir / "rules.yml")]
    if alertmanager_port:
        cfg["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]}
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    data = tsdb_dir or workdir / "data"
    return _spawn(
        "Prometheus",
        workdir,
        port,
        [
            binary("prometheus"),
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=30d",
            "--web.enable-lifecycle",
            *(["--web.enable-remote-write-receiver"] if remote_write_receiver else []),
        ],
    )


def start_alertmanager(
    workdir: Path,
    *,
    webhook_url: str,
    token_file: Path | None = None,
    group_wait: str = "1s",
    group_interval: str = "5s",
    repeat_interval: str = "1h",
    resolve_timeout: str = "5m",
    send_resolved: bool = True,
) -> Service:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    webhook: dict[str, object] = {"url": webhook_url, "send_resolved": send_resolved, "max_alerts": 0}
    if token_file is not None:
        webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials_file": str(token_file)}}
    cfg = {
        "global": {"resolve_timeout": resolve_timeout},
        "route": {
            "receiver": "aiopsd",
            "group_by": ["alertname"],
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [{"name": "aiopsd", "webhook_configs": [webhook]}],
    }
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return _spawn(
        "Alertmanager",
        workdir,
        port,
        [
            binary("prometheus-alertmanager", "alertmanager"),
            f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
    )


def _spawn(name: str, workdir: Path, port: int, cmd: list[str]) -> Service:
    """Start ``cmd`` logging to ``workdir/<name>.log`` and wait until its /-/ready answers."""
    log = workdir / f"{name.lower()}.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir)
    svc = Service(name.lower(), proc, port, workdir, log)
    try:
        wait_http(f"{svc.url}/-/ready", 60, proc)
    except AiopsdError:
        svc.stop()
        raise AiopsdError(f"{name} did not start; see {log}") from None
    return svc


@contextlib.contextmanager
def stopping(*services: Service) -> Iterator[None]:
    try:
        yield
    finally:
        for s in reversed(services):
            s.stop()
