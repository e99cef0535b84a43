"""A store blip or a failure judging data never loses it: the next poll judges the same rows again.

The blip is injected by making the real SQLite store's ``upsert_findings`` raise once (a
store error cannot be provoked on demand from a real SQLite file without also breaking reads).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aiopsd.config import PredictionLogConfig, PrometheusConfig, WatchConfig
from aiopsd.daemon.metrics import Metrics
from aiopsd.demo.model_workload import set_up_model
from aiopsd.errors import StoreUnavailableError
from aiopsd.model_store.directory import DirectoryStore
from aiopsd.models import FindingStatus, series_key
from aiopsd.sources.predictions.watch import DriftWatch
from aiopsd.sources.prometheus.watch import PrometheusWatch
from aiopsd.store import StateStore
from aiopsd.testing import ScriptedRange
from tests.integration.test_drift_watch import log_rows
from tests.support import run_poll


def _fail_next_upsert(store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    real = store.upsert_findings

    def once(items: Any) -> None:
        monkeypatch.setattr(store, "upsert_findings", real)
        raise StoreUnavailableError("database is locked")

    monkeypatch.setattr(store, "upsert_findings", once)


def test_drift_window_judged_again_after_a_failed_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model_dir, ref = tmp_path / "models" / "churn", tmp_path / "ref.csv"
    set_up_model(model_dir, ref)
    _, model = DirectoryStore(model_dir).load()
    log = tmp_path / "churn.jsonl"
    cfg = PredictionLogConfig(model="churn", path=str(log), reference=ref, window={"rows": 300}, reports=False)
    store = StateStore(f"sqlite:///{tmp_path / 's.db'}")
    w = DriftWatch(cfg, store, Metrics(), tmp_path / "state")
    log_rows(log, 300, 1.0, 2, model, 3000.0)
    _fail_next_upsert(store, monkeypatch)
    with pytest.raises(StoreUnavailableError):
        run_poll(w, 4000.0)
    assert store.list_findings() == []
    found = run_poll(w, 4001.0)
    assert [f.details["event"] for f in found] == ["opened"], "the same window is judged again and opens"
    [stored] = store.list_findings()
    assert stored.status == FindingStatus.FIRING and stored.details["window_start"] == 3000.0
    store.close()


def test_anomaly_points_scored_again_after_a_failed_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 's.db'}")
    src = ScriptedRange()
    w = PrometheusWatch(
        WatchConfig(name="w", query="q", step=1, interval=1, lookback=600, detector="mad", resolve_after=3),
        PrometheusConfig(url="http://unused", overlap=5, stale_after=30),
        src,
        store,
        Metrics(),
    )
    ts = np.arange(0.0, 400.0)
    vs = 10 + np.random.default_rng(1).normal(0, 0.5, ts.size)
    vs[350:] = 50.0
    key = (("host", "a"),)
    src.data[key] = (ts[:300], vs[:300])
    assert run_poll(w, 300.0) == []
    src.data[key] = (ts[:360], vs[:360])
    _fail_next_upsert(store, monkeypatch)
    with pytest.raises(StoreUnavailableError):
        run_poll(w, 360.0)
    assert store.get_cursor("prometheus:w")["watermark"] == 300.0  # type: ignore[index]
    found = run_poll(w, 361.0)
    assert found and found[0].details["event"] == "opened"
    [stored] = store.list_findings()
    assert stored.starts_at.timestamp() == 350.0 and stored.status == FindingStatus.FIRING
    assert store.get_cursor("prometheus:w")["watermark"] == 361.0  # type: ignore[index]
    store.close()


def test_a_detector_raising_loses_no_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 's.db'}")
    src = ScriptedRange()
    w = PrometheusWatch(
        WatchConfig(name="w", query="q", step=1, interval=1, lookback=600, detector="mad", resolve_after=3),
        PrometheusConfig(url="http://unused", overlap=5, stale_after=30),
        src,
        store,
        Metrics(),
    )
    ts = np.arange(0.0, 400.0)
    vs = 10 + np.random.default_rng(1).normal(0, 0.5, ts.size)
    vs[350:] = 50.0
    src.data[(("host", "a"),)] = (ts[:300], vs[:300])
    src.data[(("host", "b"),)] = (ts[:300], vs[:300])
    run_poll(w, 300.0)
    src.data = {k: (ts[:360], vs[:360]) for k in src.data}
    b = w.series[series_key("w", {"host": "b"})]

    def boom(t: float, v: float) -> Any:
        raise FloatingPointError("detector bug")

    monkeypatch.setattr(b.detector, "update", boom)
    with pytest.raises(FloatingPointError):
        run_poll(w, 360.0)
    found = run_poll(w, 361.0)  # rebuilt from the stored watermark: both series' incidents open
    assert sorted(f.labels["host"] for f in found if f.details["event"] == "opened") == ["a", "b"]
    store.close()
