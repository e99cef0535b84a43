"""A throwaway MLflow tracking server (``mlflow server``, SQLite backend, local artifacts) on a free loopback port.

Used by the MLflow model store tests and the demo. Artifacts are proxied by the
server (``--artifacts-destination``), so clients need no access to its files:
what a serving process does against a real MLflow deployment. The server runs
in its own session and is stopped by signalling the whole process group (it
forks workers).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aiopsd.demo.stack import free_port, wait_http
from aiopsd.errors import AiopsdError

START_TIMEOUT = 180.0  # first start migrates the SQLite schema; slow on a loaded machine


@dataclass
class MlflowServer:
    proc: subprocess.Popen[bytes]
    port: int
    workdir: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 15.0) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # workers left in the group


def start_mlflow(workdir: Path | None = None) -> MlflowServer:
    workdir = Path(workdir or tempfile.mkdtemp(prefix="aiopsd-mlflow-"))
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    cmd = [
        str(mlflow) if mlflow.exists() else "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{workdir / 'mlflow.db'}",
        "--artifacts-destination",
        str(workdir / "artifacts"),
        "--workers",
        "1",
    ]
    log = workdir / "mlflow.log"
    env = {**os.environ, "MLFLOW_TRACKING_URI": "", "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as fh:
        try:
            proc = subprocess.Popen(
                cmd,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=workdir,
                env=env,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise AiopsdError("mlflow is not installed: pip install -e '.[dev]' (it brings `mlflow server`)") from None
    server = MlflowServer(proc, port, workdir, log)
    try:
        wait_http(f"{server.url}/health", START_TIMEOUT, proc)
    except AiopsdError:
        server.stop()
        raise AiopsdError(f"mlflow server did not start; see {log}") from None
    return server


@contextlib.contextmanager
def running_mlflow(workdir: Path | None = None) -> Iterator[MlflowServer]:
    server = start_mlflow(workdir)
    try:
        yield server
    finally:
        server.stop()
