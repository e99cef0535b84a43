"""SIGHUP applies prediction_logs: added, changed and removed logs take effect without a restart."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from aiopsd.config import load_settings
from aiopsd.daemon.service import Daemon
from aiopsd.models import SourceKind
from aiopsd.sources.predictions.watch import DriftWatch


def drift_watches(daemon: Daemon) -> list[DriftWatch]:
    found = daemon.sources.of(SourceKind.PREDICTION_LOG)
    assert all(isinstance(d, DriftWatch) for d in found)
    return [d for d in found if isinstance(d, DriftWatch)]


def test_reload_applies_prediction_logs(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    log = tmp_path / "m.jsonl"
    log.write_text(
        "".join(
            json.dumps({"timestamp": 1_700_000_000 + i, "model": "m", "prediction": 1, "features": {"x": float(i)}})
            + "\n"
            for i in range(5)
        )
    )
    base = {"state_url": "sqlite:///state.db", "state_dir": "state", "rules_dir": "rules"}
    cfg = tmp_path / "aiopsd.yaml"
    cfg.write_text(yaml.safe_dump(base))
    daemon = Daemon(load_settings(cfg), str(cfg))
    try:
        assert drift_watches(daemon) == []
        cfg.write_text(
            yaml.safe_dump({**base, "prediction_logs": [{"model": "m", "path": "m.jsonl", "interval": "7s"}]})
        )
        assert daemon.reload()
        assert [d.cfg.model for d in drift_watches(daemon)] == ["m"]
        assert drift_watches(daemon)[0].cfg.interval == 7.0
        assert "prediction_logs" not in daemon.runtime.restart_needed
        first = drift_watches(daemon)[0]
        assert daemon.reload()
        assert drift_watches(daemon)[0] is first, "an unchanged log keeps its watcher"
        cfg.write_text(
            yaml.safe_dump({**base, "prediction_logs": [{"model": "m", "path": "m.jsonl", "interval": "9s"}]})
        )
        assert daemon.reload()
        assert drift_watches(daemon)[0] is not first and drift_watches(daemon)[0].cfg.interval == 9.0
        cfg.write_text(yaml.safe_dump(base))
        assert daemon.reload()
        assert drift_watches(daemon) == []
    finally:
        daemon.runtime.store.close()


def test_a_watch_and_a_prediction_log_with_the_same_name_are_both_scheduled(tmp_path: Path) -> None:
    # Both named "churn": each source gets its own poll job (a prediction log's source name is
    # "predictions:<model>", so the ids cannot collide).
    (tmp_path / "rules").mkdir()
    (tmp_path / "churn.jsonl").write_text("")
    cfg = tmp_path / "aiopsd.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "state_url": "sqlite:///state.db",
                "state_dir": "state",
                "rules_dir": "rules",
                "watches": [{"name": "churn", "query": "up", "step": "30s", "interval": "30s"}],
                "prediction_logs": [{"model": "churn", "path": "churn.jsonl"}],
            }
        )
    )
    daemon = Daemon(load_settings(cfg), str(cfg))
    try:
        daemon._schedule()
        daemon.scheduler.start(paused=True)
        polls = sorted(j.id for j in daemon.scheduler.get_jobs() if j.id.startswith("poll:"))
        assert polls == ["poll:churn", "poll:predictions:churn"]
    finally:
        if daemon.scheduler.running:
            daemon.scheduler.shutdown(wait=False)
        daemon.runtime.store.close()
