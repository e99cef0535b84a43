"""Real ansible-runner against localhost: output kept, failures reported, timeouts kill everything."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from aiopsd.actions.playbook import run_playbook
from aiopsd.actions.process import MARKER_VAR
from aiopsd.models import RunStatus

REPO = Path(__file__).resolve().parents[2]


def book(tmp: Path, name: str, tasks: str) -> Path:
    d = tmp / "books"
    d.mkdir(exist_ok=True)
    (d / name).write_text(f"- hosts: all\n  gather_facts: false\n  tasks:\n{tasks}")
    return d


def marked_processes(run_dir: Path) -> list[int]:
    """Live processes started by aiopsd for the run whose private directory is ``run_dir``."""
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/environ", "rb") as fh:
                env = fh.read()
            with open(f"/proc/{p}/stat", "rb") as fh:
                state = fh.read().rsplit(b") ", 1)[1][:1]
        except (OSError, IndexError):
            continue
        if MARKER_VAR.encode() in env and str(run_dir).encode() in env and state not in (b"Z", b"X"):
            found.append(int(p))
    return found


def test_shipped_diagnostics_playbook_runs_for_real(tmp_path: Path) -> None:
    res = run_playbook(
        playbooks_dir=REPO / "playbooks",
        playbook="collect_diagnostics.yml",
        targets=["localhost"],
        extra_vars={"diagnostics_dir": str(tmp_path / "diag"), "incident": "i-1"},
        check=False,
        timeout=120,
        private_dir=tmp_path / "run",
    )
    assert res.status == RunStatus.SUCCEEDED, res.output
    assert "PLAY RECAP" in res.output
    assert "## memory" in (tmp_path / "diag" / "i-1.txt").read_text()


def test_check_mode_changes_nothing(tmp_path: Path) -> None:
    res = run_playbook(
        playbooks_dir=REPO / "playbooks",
        playbook="collect_diagnostics.yml",
        targets=["localhost"],
        extra_vars={"diagnostics_dir": str(tmp_path / "diag"), "incident": "i-2"},
        check=True,
        timeout=120,
        private_dir=tmp_path / "run",
    )
    assert res.status == RunStatus.SUCCEEDED, res.output
    assert not (tmp_path / "diag").exists()


def test_failing_playbook_is_failed_with_rc_and_output(tmp_path: Path) -> None:
    d = book(tmp_path, "fail.yml", "    - ansible.builtin.fail: {msg: the service refused to restart}\n")
    res = run_playbook(
        playbooks_dir=d,
        playbook="fail.yml",
        targets=["localhost"],
        extra_vars={},
        check=False,
        timeout=60,
        private_dir=tmp_path / "run",
    )
    assert res.status == RunStatus.FAILED
    assert res.rc == 2
    assert "the service refused to restart" in res.output


def test_timeout_kills_the_whole_tree(tmp_path: Path) -> None:
    d = book(tmp_path, "hang.yml", "    - ansible.builtin.shell: sleep 600 & sleep 600\n")
    res = run_playbook(
        playbooks_dir=d,
        playbook="hang.yml",
        targets=["localhost"],
        extra_vars={},
        check=False,
        timeout=8,
        private_dir=tmp_path / "run",
    )
    assert res.status == RunStatus.TIMED_OUT
    assert "timed out after 8s" in res.error
    time.sleep(0.5)
    assert marked_processes(tmp_path / "run") == [], "a process the playbook started outlived its timeout"


def test_cancel_kills_the_whole_tree(tmp_path: Path) -> None:
    d = book(tmp_path, "hang.yml", "    - ansible.builtin.shell: sleep 600\n")
    cancel = threading.Event()
    threading.Timer(6, cancel.set).start()
    res = run_playbook(
        playbooks_dir=d,
        playbook="hang.yml",
        targets=["localhost"],
        extra_vars={},
        check=False,
        timeout=300,
        private_dir=tmp_path / "run",
        cancel=cancel,
    )
    assert res.status == RunStatus.CANCELED
    time.sleep(0.5)
    assert marked_processes(tmp_path / "run") == []
