"""Run a command bounded in time, and make sure nothing it spawned outlives it.

ansible-runner starts ansible-playbook through pexpect, which gives it a new
session, so killing our child's process group is not enough. Every process we
start carries a unique marker in its environment; on timeout or cancel we kill
our child's process group, its whole descendant tree *and* every process carrying
the marker (orphans that were reparented away included), until none is left.
Playbooks and retrain jobs both run through :func:`run_bounded`. Processes are
read with psutil (environments, children, states).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)

MARKER_VAR = "AIOPSD_RUN_MARKER"


@dataclass(frozen=True)
class Bounded:
    rc: int | None
    timed_out: bool
    canceled: bool
    killed: int  # processes killed after the deadline or cancel


def _marked(proc: psutil.Process, marker: str) -> bool:
    try:
        return proc.environ().get(MARKER_VAR) == marker
    except (psutil.Error, OSError):  # gone, a zombie, or not ours to read
        return False


def _group(proc: psutil.Process) -> int | None:
    try:
        return os.getpgid(proc.pid)
    except OSError:
        return None


def find_marked(marker: str, root: int | None = None) -> set[int]:
    """Live processes carrying ``marker`` in their environment, plus ``root``'s process group and
    descendants (``root`` leads its own session, see :func:`run_bounded`)."""
    found: set[int] = set()
    for proc in psutil.process_iter():
        if _marked(proc, marker) or (root is not None and _group(proc) == root):
            found.add(proc.pid)
    if root is not None:
        with contextlib.suppress(psutil.Error):
            found.update(c.pid for c in psutil.Process(root).children(recursive=True))
    found.discard(os.getpid())
    return found


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.Error:
        return False


def kill_all(marker: str, root: int | None, *, grace: float = 3.0) -> int:
    """SIGTERM, then SIGKILL after ``grace``, every marked process until none is left; how many were found."""
    seen: set[int] = set()
    deadline = time.monotonic() + grace
    sig = signal.SIGTERM
    for _ in range(50):
        pids = find_marked(marker, root)
        if root is not None:
            pids.add(root)
        alive = {p for p in pids if _alive(p)}
        if not alive:
            break
        seen |= alive
        for p in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, sig)
        time.sleep(0.1)
        if time.monotonic() > deadline:
            sig = signal.SIGKILL
    return len(seen)


def run_bounded(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    timeout: float,
    output: Path,
    cancel: threading.Event | None = None,
) -> Bounded:
    """Run ``cmd`` with stdout+stderr to ``output``; kill everything it spawned at the deadline."""
    marker = uuid.uuid4().hex
    full_env = {**env, MARKER_VAR: marker}
    with output.open("wb") as out:
        proc = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    timed_out = canceled = False
    while True:
        try:
            proc.wait(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            pass
        if cancel is not None and cancel.is_set():
            canceled = True
            break
        if time.monotonic() >= deadline:
            timed_out = True
            break
    killed = 0
    if timed_out or canceled:
        logger.warning(
            "%s after %.0fs: killing %s and everything it started",
            "timed out" if timed_out else "canceled",
            timeout,
            cmd[0],
        )
        killed = kill_all(marker, proc.pid)
        proc.wait()
        return Bounded(rc=None, timed_out=timed_out, canceled=canceled, killed=killed)
    # Normal exit: still make sure no straggler (a daemonised task) is left behind.
    if find_marked(marker):
        killed = kill_all(marker, None)
    return Bounded(rc=proc.returncode, timed_out=False, canceled=False, killed=killed)
