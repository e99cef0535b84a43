"""SIGHUP applies prediction_logs: added, changed and removed logs take effect without a restart."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from aiopsd.config import load_settings
from aiopsd.daemon.service import Daemon


def test_reload_applies_prediction_logs(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    log = tmp_path / "m.jsonl"
    log.write_text("".join(json.dumps({"timestamp": 1_700_000_000 + i, "model": "m", "prediction": 1,
                                       "features": {"x": float(i)}}) + "\n" for i in range(5)))
    base = {"state_url": "sqlite:///state.db", "state_dir": "state", "rules_dir": "rules"}
    cfg = tmp_path / "aiopsd.yaml"
    cfg.write_text(yaml.safe_dump(base))
    daemon = Daemon(load_settings(cfg), str(cfg))
    try:
        assert daemon.drift_watchers == []
        cfg.write_text(yaml.safe_dump({**base, "prediction_logs": [
            {"model": "m", "path": "m.jsonl", "interval": "7s"}]}))
        assert daemon.reload()
        assert [d.cfg.model for d in daemon.drift_watchers] == ["m"]
        assert daemon.drift_watchers[0].cfg.interval == 7.0
        assert "prediction_logs" not in daemon.runtime.restart_needed
        first = daemon.drift_watchers[0]
        assert daemon.reload()
        assert daemon.drift_watchers[0] is first, "an unchanged log keeps its watcher"
        cfg.write_text(yaml.safe_dump({**base, "prediction_logs": [
            {"model": "m", "path": "m.jsonl", "interval": "9s"}]}))
        assert daemon.reload()
        assert daemon.drift_watchers[0] is not first and daemon.drift_watchers[0].cfg.interval == 9.0
        cfg.write_text(yaml.safe_dump(base))
        assert daemon.reload()
        assert daemon.drift_watchers == []
    finally:
        daemon.runtime.store.close()
