"""actions/process.py: a bounded run leaves nothing behind, whatever left its session or group."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import psutil

from aiopsd.actions.process import MARKER_VAR, find_marked, run_bounded


def marked_alive(tag: str) -> list[int]:
    """Live processes of the test run tagged ``tag`` (the marker is random; the tag is ours)."""
    out = []
    for p in psutil.process_iter():
        try:
            env = p.environ()
            if env.get("TEST_TAG") == tag and MARKER_VAR in env and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except psutil.Error:
            continue
    return out


def test_a_timeout_kills_the_child_and_what_left_its_session(tmp_path: Path) -> None:
    tag = f"timeout-{os.getpid()}"
    started = time.monotonic()
    done = run_bounded(
        ["sh", "-c", "setsid sleep 300 & sleep 300 & wait"],
        env={**os.environ, "TEST_TAG": tag},
        cwd=tmp_path,
        timeout=1.0,
        output=tmp_path / "out.log",
    )
    assert done.timed_out and done.rc is None and done.killed >= 3
    assert time.monotonic() - started < 30
    assert marked_alive(tag) == []


def test_cancel_kills_the_tree(tmp_path: Path) -> None:
    tag = f"cancel-{os.getpid()}"
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    done = run_bounded(
        ["sh", "-c", "sleep 300 & sleep 300 & wait"],
        env={**os.environ, "TEST_TAG": tag},
        cwd=tmp_path,
        timeout=60,
        output=tmp_path / "out.log",
        cancel=cancel,
    )
    assert done.canceled and not done.timed_out
    assert marked_alive(tag) == []


def test_a_straggler_left_by_a_finished_command_is_killed(tmp_path: Path) -> None:
    tag = f"straggler-{os.getpid()}"
    done = run_bounded(
        ["sh", "-c", "setsid sleep 300 > /dev/null 2>&1 & echo started"],
        env={**os.environ, "TEST_TAG": tag},
        cwd=tmp_path,
        timeout=30,
        output=tmp_path / "out.log",
    )
    assert done.rc == 0 and done.killed == 1
    assert (tmp_path / "out.log").read_text().strip() == "started"
    assert marked_alive(tag) == []


def test_find_marked_never_names_this_process() -> None:
    assert os.getpid() not in find_marked("no-such-marker", root=os.getpid())
