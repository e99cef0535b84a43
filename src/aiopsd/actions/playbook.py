"""Run an Ansible playbook through ansible-runner, in a private directory per run.

The inventory is built from the decision's targets (literal hosts, checked by
:mod:`aiopsd.engine.targets`; a port from a ``host:port`` target is the host's
``ansible_port``); ``localhost``, ``127.0.0.1`` and ``::1`` use the local connection,
like Ansible's implicit localhost. Dry runs use Ansible's check mode.

Labels are data, never code: every extra var is written to ``env/extravars`` as one YAML
mapping tagged ``!unsafe``, which ansible-core (2.19 data tagging included) never
templates, so ``{{ ... }}`` inside a label reaches the playbook as those characters.
Only a rule's ``template_vars`` (the explicit opt-in) go in a second, untagged file.
The playbook path is resolved, symlinks included, and must lie inside ``playbooks_dir``.
The run is bounded by its timeout and everything it spawned is killed at the deadline
(see :mod:`aiopsd.actions.process`).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from aiopsd.actions.base import ActionContext, ActionResult
from aiopsd.actions.process import run_bounded
from aiopsd.errors import ActionError
from aiopsd.models import ActionRun, RunStatus

logger = logging.getLogger(__name__)

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
OUTPUT_LIMIT = 256 * 1024


def tool_env(private_dir: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for ansible: ``base`` (default: ours) without aiopsd's own variables, our venv's
    bin first on PATH, Ansible's state inside the run dir."""
    base = os.environ if base is None else base
    bindir = str(Path(sys.executable).parent)
    path = base.get("PATH", "/usr/bin:/bin")
    env = {k: v for k, v in base.items() if not k.startswith("AIOPSD_")}
    env.update(
        {
            "PATH": f"{bindir}{os.pathsep}{path}" if bindir not in path.split(os.pathsep) else path,
            "ANSIBLE_HOME": str(private_dir / ".ansible"),
            "ANSIBLE_LOCAL_TEMP": str(private_dir / ".ansible" / "tmp"),
            "ANSIBLE_REMOTE_TEMP": str(private_dir / ".ansible" / "remote_tmp"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_STDOUT_CALLBACK": "default",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def build_inventory(targets: Sequence[str], ports: Mapping[str, int] | None = None) -> dict[str, Any]:
    hosts: dict[str, dict[str, Any]] = {}
    for target in targets:
        hosts[target] = (
            {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
            if target in LOCAL_HOSTS
            else {}
        )
        if ports and target in ports:
            hosts[target]["ansible_port"] = int(ports[target])
    return {"all": {"hosts": hosts}}


class _ExtraVarsDumper(yaml.SafeDumper):
    """Every string double-quoted: control characters, NULs and newlines are escapes, never YAML syntax."""


def _quoted(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')


_ExtraVarsDumper.add_representer(str, _quoted)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def extravars_yaml(extra_vars: Mapping[str, Any]) -> str:
    """The run's ``env/extravars``: one mapping tagged ``!unsafe`` as a whole.

    ansible-core 2.19 re-resolves a *scalar* tagged ``!unsafe`` as if it were unquoted, so
    ``!unsafe "true"`` arrives as a bool and ``!unsafe "0123"`` as the octal 83. Tagging the
    root mapping instead leaves every quoted string a string, and everything constructed
    inside it (keys, nested lists and maps) is untrusted: never templated.
    """
    body = yaml.dump(
        {str(k): _plain(v) for k, v in extra_vars.items()},
        Dumper=_ExtraVarsDumper,
        allow_unicode=False,
        sort_keys=False,
        width=2**30,
        default_flow_style=False,
    )
    return "--- !unsafe\n" + body


def template_vars_yaml(template_vars: Mapping[str, Any]) -> str:
    """The opted-in ``template_vars``: plain YAML, which Ansible templates (rule text only, no labels)."""
    return yaml.safe_dump({str(k): v for k, v in template_vars.items()}, sort_keys=False, allow_unicode=False)


def resolve_playbook(playbooks_dir: Path, playbook: str) -> Path:
    """The playbook's real path, refused unless it lies inside ``playbooks_dir`` (symlinks resolved)."""
    project = playbooks_dir.resolve()
    if not playbook or "\x00" in playbook or any(c in playbook for c in "\r\n"):
        raise ActionError(f"playbook {playbook!r} is not a file name")
    try:
        path = (project / playbook).resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise ActionError(f"playbook {playbook!r}: {exc}") from None
    if not path.is_relative_to(project):
        raise ActionError(f"playbook {playbook!r} resolves to {path}, outside playbooks_dir {project}: refused")
    if not path.is_file():
        raise ActionError(f"playbook {playbook!r} not found in {project}")
    return path


def tail(text: str, limit: int = OUTPUT_LIMIT) -> str:
    return text if len(text) <= limit else "[... output truncated ...]\n" + text[-limit:]


def execute_playbook(run: ActionRun, ctx: ActionContext) -> ActionResult:
    """The playbook executor: the run's playbook on its targets, check mode for a dry run."""
    action = run.action
    extra = {
        **ctx.playbook_vars,
        "aiopsd_run_id": run.id,
        "aiopsd_rule": run.rule,
        "aiopsd_dry_run": run.dry_run,
        **dict(action.get("extra_vars") or {}),
    }
    return run_playbook(
        playbooks_dir=ctx.playbooks_dir,
        playbook=str(action["playbook"]),
        targets=run.targets,
        extra_vars=extra,
        check=run.dry_run,
        timeout=ctx.timeout,
        private_dir=ctx.private_dir,
        cancel=ctx.cancel,
        ports=action.get("target_ports") or None,
        template_vars=action.get("template_vars") or None,
        env=ctx.env,
    )


def run_playbook(
    *,
    playbooks_dir: Path,
    playbook: str,
    targets: Sequence[str],
    extra_vars: Mapping[str, Any],
    check: bool,
    timeout: float,
    private_dir: Path,
    cancel: threading.Event | None = None,
    ports: Mapping[str, int] | None = None,
    template_vars: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> ActionResult:
    """Run one playbook to completion, timeout or cancel; never raises for a failing playbook."""
    project = playbooks_dir.resolve()
    path = resolve_playbook(project, playbook)
    if not targets:
        raise ActionError("a playbook run needs at least one target")
    private_dir.mkdir(parents=True, exist_ok=True)
    (private_dir / "inventory").mkdir(exist_ok=True)
    (private_dir / "env").mkdir(exist_ok=True)
    (private_dir / "inventory" / "hosts.json").write_text(json.dumps(build_inventory(targets, ports), indent=2))
    (private_dir / "env" / "extravars").write_text(extravars_yaml(extra_vars), encoding="utf-8")
    cmd = [
        sys.executable,
        "-m",
        "ansible_runner",
        "run",
        str(private_dir),
        "--ident",
        "run",
        "--project-dir",
        str(project),
        "-p",
        str(path.relative_to(project)),
        "--inventory",
        str(private_dir / "inventory" / "hosts.json"),
    ]
    cmdline: list[str] = []
    if template_vars:
        # A second -e file, outside the unsafe mapping: only these are trusted as templates.
        tv = private_dir / "env" / "template_vars.yml"
        tv.write_text(template_vars_yaml(template_vars), encoding="utf-8")
        cmdline += ["-e", f"@{tv}"]
    if check:
        cmdline += ["--check", "--diff"]
    if cmdline:
        cmd += ["--cmdline", shlex.join(cmdline)]
    console = private_dir / "console.log"
    result = run_bounded(
        cmd, env=tool_env(private_dir, env), cwd=private_dir, timeout=timeout, output=console, cancel=cancel
    )
    artifacts = private_dir / "artifacts" / "run"
    stdout_file = artifacts / "stdout"
    text = stdout_file.read_text(errors="replace") if stdout_file.is_file() else ""
    if not text.strip():
        text = console.read_text(errors="replace") if console.is_file() else ""
    if result.timed_out:
        return ActionResult(
            RunStatus.TIMED_OUT,
            None,
            tail(text),
            f"timed out after {timeout:g}s; killed {result.killed} processes",
            str(artifacts),
        )
    if result.canceled:
        return ActionResult(
            RunStatus.CANCELED, None, tail(text), f"canceled; killed {result.killed} processes", str(artifacts)
        )
    rc = result.rc
    if rc == 0:
        return ActionResult(RunStatus.SUCCEEDED, 0, tail(text), "", str(artifacts))
    hint = " (a command was not found: is the venv's bin on PATH?)" if rc == 127 else ""
    return ActionResult(RunStatus.FAILED, rc, tail(text), f"ansible-playbook exited with rc={rc}{hint}", str(artifacts))
