"""A throwaway PostgreSQL cluster (Debian's postgresql package) on a free loopback port.

Used by the HA tests and ``bench/ha.py``. PostgreSQL refuses to run as root, so when we
are root the cluster is created and run as the ``postgres`` system user (which the
Debian package creates) in a directory it owns.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiopsd.demo.stack import free_port
from aiopsd.errors import AiopsdError


def pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass(frozen=True)
class Postgres:
    url: str  # SQLAlchemy URL (postgresql+psycopg://)
    port: int
    datadir: Path
    options: str = ""  # the server options it was started with (start() reuses them)

    def _pg_ctl(self, *args: str) -> None:
        bindir = pg_bindir()
        assert bindir is not None
        done = subprocess.run(
            _as_owner([str(bindir / "pg_ctl"), "-D", str(self.datadir), *args]),
            check=False,
            capture_output=True,
            cwd=self.datadir.parent,
        )
        if done.returncode != 0:
            raise AiopsdError(f"pg_ctl {args[-1]} failed: {done.stderr.decode(errors='replace').strip()}")

    def stop(self) -> None:
        """Stop the server at once (like a crash or a failover: clients see their connections die)."""
        self._pg_ctl("-m", "immediate", "-w", "stop")

    def start(self) -> None:
        """Start it again on the same port and data directory."""
        self._pg_ctl("-l", str(self.datadir.parent / "log"), "-o", self.options, "-w", "-t", "60", "start")


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextmanager
def running_postgres(max_connections: int = 200) -> Iterator[Postgres]:
    bindir = pg_bindir()
    if bindir is None:
        raise AiopsdError("PostgreSQL is not installed: run `make system-deps` (Debian package postgresql)")
    root = Path(tempfile.mkdtemp(prefix="aiopsd-pg-"))
    datadir = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()

    def run(cmd: list[str]) -> None:
        done = subprocess.run(_as_owner(cmd), check=False, capture_output=True, cwd=root)
        if done.returncode != 0:
            raise AiopsdError(f"{Path(cmd[0]).name} failed: {done.stderr.decode(errors='replace').strip()}")

    try:
        run([str(bindir / "initdb"), "-D", str(datadir), "-U", "aiopsd", "-A", "trust", "--no-sync", "-E", "UTF8"])
        opts = (
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} "
            f"-c max_connections={max_connections} -c fsync=off -c full_page_writes=off"
        )
        run(
            [str(bindir / "pg_ctl"), "-D", str(datadir), "-l", str(root / "log"), "-o", opts, "-w", "-t", "60", "start"]
        )
        run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "aiopsd", "aiopsd"])
        yield Postgres(
            url=f"postgresql+psycopg://aiopsd@127.0.0.1:{port}/aiopsd", port=port, datadir=datadir, options=opts
        )
    finally:
        if (datadir / "postmaster.pid").exists():
            subprocess.run(
                _as_owner([str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "-w", "stop"]),
                check=False,
                capture_output=True,
                cwd=root,
            )
            for _ in range(50):
                if not (datadir / "postmaster.pid").exists():
                    break
                time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)
