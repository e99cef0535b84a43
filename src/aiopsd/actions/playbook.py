"""Run an Ansible playbook through ansible-runner, in a private directory per run.

The inventory is built from the decision's targets; ``localhost`` and
``127.0.0.1`` use the local connection, like Ansible's implicit localhost.
Dry runs use Ansible's check mode. The run is bounded by its timeout and
everything it spawned is killed at the deadline (see :mod:`aiopsd.actions.process`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiopsd.actions.process import run_bounded
from aiopsd.errors import ActionError
from aiopsd.models import RunStatus

logger = logging.getLogger(__name__)

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
OUTPUT_LIMIT = 256 * 1024


@dataclass(frozen=True)
class ActionResult:
    status: RunStatus
    rc: int | None
    output: str
    error: str = ""
    artifact_dir: str | None = None


def tool_env(private_dir: Path) -> dict[str, str]:
    """Environment for ansible: our venv's bin first on PATH, Ansible's state inside the run dir."""
    bindir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "/usr/bin:/bin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOPSD_")}
    env.update({
        "PATH": f"{bindir}{os.pathsep}{path}" if bindir not in path.split(os.pathsep) else path,
        "ANSIBLE_HOME": str(private_dir / ".ansible"),
        "ANSIBLE_LOCAL_TEMP": str(private_dir / ".ansible" / "tmp"),
        "ANSIBLE_REMOTE_TEMP": str(private_dir / ".ansible" / "remote_tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_STDOUT_CALLBACK": "default",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def build_inventory(targets: Sequence[str]) -> dict[str, Any]:
    hosts: dict[str, dict[str, str]] = {}
    for target in targets:
        hosts[target] = ({"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
                         if target in LOCAL_HOSTS else {})
    return {"all": {"hosts": hosts}}


def tail(text: str, limit: int = OUTPUT_LIMIT) -> str:
    return text if len(text) <= limit else "[... output truncated ...]\n" + text[-limit:]


def run_playbook(*, playbooks_dir: Path, playbook: str, targets: Sequence[str],
                 extra_vars: Mapping[str, Any], check: bool, timeout: float, private_dir: Path,
                 cancel: threading.Event | None = None) -> ActionResult:
    """Run one playbook to completion, timeout or cancel; never raises for a failing playbook."""
    project = playbooks_dir.resolve()
    if not (project / playbook).is_file():
        raise ActionError(f"playbook {playbook!r} not found in {project}")
    if not targets:
        raise ActionError("a playbook run needs at least one target")
    private_dir.mkdir(parents=True, exist_ok=True)
    (private_dir / "inventory").mkdir(exist_ok=True)
    (private_dir / "env").mkdir(exist_ok=True)
    (private_dir / "inventory" / "hosts.json").write_text(json.dumps(build_inventory(targets), indent=2))
    (private_dir / "env" / "extravars").write_text(json.dumps(dict(extra_vars), indent=2, default=str))
    cmd = [sys.executable, "-m", "ansible_runner", "run", str(private_dir), "--ident", "run",
           "--project-dir", str(project), "-p", playbook,
           "--inventory", str(private_dir / "inventory" / "hosts.json")]
    if check:
        cmd += ["--cmdline", "--check --diff"]
    console = private_dir / "console.log"
    result = run_bounded(cmd, env=tool_env(private_dir), cwd=private_dir, timeout=timeout, output=console,
                         cancel=cancel)
    artifacts = private_dir / "artifacts" / "run"
    stdout_file = artifacts / "stdout"
    text = stdout_file.read_text(errors="replace") if stdout_file.is_file() else ""
    if not text.strip():
        text = console.read_text(errors="replace") if console.is_file() else ""
    if result.timed_out:
        return ActionResult(RunStatus.TIMED_OUT, None, tail(text),
                            f"timed out after {timeout:g}s; killed {result.killed} processes",
                            str(artifacts))
    if result.canceled:
        return ActionResult(RunStatus.CANCELED, None, tail(text),
                            f"canceled; killed {result.killed} processes", str(artifacts))
    rc = result.rc
    if rc == 0:
        return ActionResult(RunStatus.SUCCEEDED, 0, tail(text), "", str(artifacts))
    hint = " (a command was not found: is the venv's bin on PATH?)" if rc == 127 else ""
    return ActionResult(RunStatus.FAILED, rc, tail(text), f"ansible-playbook exited with rc={rc}{hint}",
                        str(artifacts))
