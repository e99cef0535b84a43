"""A poll still running when the next one is due is skipped by the scheduler, and that is counted."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import yaml

from aiopsd.config import load_settings
from aiopsd.daemon.scheduling import SCHEDULER_EVENTS
from aiopsd.daemon.service import Daemon


def test_runs_skipped_while_the_previous_one_runs_are_counted(tmp_path: Path) -> None:
    cfg = tmp_path / "aiopsd.yaml"
    cfg.write_text(yaml.safe_dump({"state_url": "sqlite:///state.db", "state_dir": "state", "rules_dir": "rules"}))
    (tmp_path / "rules").mkdir()
    daemon = Daemon(load_settings(cfg), str(cfg))
    release = threading.Event()
    registry = daemon.runtime.metrics.registry
    try:
        daemon.scheduler.add_listener(daemon._on_event, SCHEDULER_EVENTS)
        daemon.scheduler.add_job(release.wait, "interval", seconds=0.05, id="poll:slow", args=[30])
        daemon.scheduler.start()
        deadline = time.monotonic() + 30
        while (registry.get_sample_value("aiopsd_scheduler_skipped_total", {"job": "poll:slow"}) or 0) < 2:
            assert time.monotonic() < deadline, "no skipped run counted"
            release.wait(0.05)
    finally:
        release.set()
        daemon.scheduler.shutdown(wait=True)
        daemon.runtime.store.close()
