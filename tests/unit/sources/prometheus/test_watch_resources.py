"""Bounded watches: max_series refuses the excess (counted, visible); vanished series leave /metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from prometheus_client import generate_latest

from aiopsd.config import PrometheusConfig, WatchConfig
from aiopsd.daemon.http import overview
from aiopsd.daemon.metrics import Metrics
from aiopsd.sources.prometheus.watch import PrometheusWatch
from aiopsd.store import StateStore
from aiopsd.testing import ScriptedRange
from tests.support import make_runtime, run_poll

TS = np.arange(0.0, 400.0)


def _watcher(store: StateStore, metrics: Metrics, **watch: object) -> tuple[PrometheusWatch, ScriptedRange]:
    src = ScriptedRange()
    cfg = WatchConfig.model_validate(
        {
            "name": "w",
            "query": "q",
            "step": 1,
            "interval": 1,
            "lookback": 600,
            "detector": "mad",
            "resolve_after": 2,
            **watch,
        }
    )
    return PrometheusWatch(
        cfg, PrometheusConfig(url="http://unused", overlap=5, stale_after=300), src, store, metrics
    ), src


def _values(seed: int) -> np.ndarray:
    return 10 + np.random.default_rng(seed).normal(0, 0.5, TS.size)


def test_max_series_refuses_the_excess_counts_it_and_shows_it(tmp_path: Path) -> None:
    rt = make_runtime(tmp_path, watches=[{"name": "w", "query": "q", "max_series": 3}])
    w, src = _watcher(rt.store, rt.metrics, max_series=3)
    for i in range(5):
        src.data[(("pod", f"p{i}"),)] = (TS[:300], _values(i)[:300])
    run_poll(w, 300.0)
    assert sorted(s.labels["pod"] for s in w.series.values()) == ["p0", "p1", "p2"]
    text = generate_latest(rt.metrics.registry).decode()
    assert 'aiopsd_watch_series_refused{watch="w"} 2.0' in text
    assert 'aiopsd_watch_series{watch="w"} 3.0' in text
    [view] = [s for s in overview.sources(rt) if s.name == "w"]
    assert view.cursor["refused_series"] == 2 and view.cursor["series"] == 3
    # A tracked series going away makes room; the refused ones stay refused while the cap is full.
    for i in range(5):
        src.data[(("pod", f"p{i}"),)] = (TS[:310], _values(i)[:310])
    run_poll(w, 310.0)
    assert len(w.series) == 3


def test_a_vanished_series_leaves_metrics_after_resolve_after_polls(tmp_path: Path) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 's.db'}")
    metrics = Metrics()
    w, src = _watcher(store, metrics)
    for pod in ("a", "b"):
        src.data[(("pod", pod),)] = (TS[:300], _values(1)[:300])
    run_poll(w, 300.0)
    for pod in ("a", "b"):
        src.data[(("pod", pod),)] = (TS[:320], _values(1)[:320])
    run_poll(w, 320.0)
    assert 'pod="b"' in generate_latest(metrics.registry).decode()
    del src.data[(("pod", "b"),)]
    run_poll(w, 321.0)
    assert 'pod="b"' in generate_latest(metrics.registry).decode(), "one missed poll is not gone yet"
    src.data[(("pod", "a"),)] = (TS[:322], _values(1)[:322])
    run_poll(w, 322.0)
    text = generate_latest(metrics.registry).decode()
    assert 'pod="b"' not in text and 'aiopsd_anomaly_score{aiopsd_watch="w",pod="a"}' in text
    store.close()


def test_exported_labels_are_valid_exposition_labels(tmp_path: Path) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 's.db'}")
    metrics = Metrics()
    w, src = _watcher(store, metrics)
    labels = (
        ("__name__", "http_latency"),
        ("__meta_x", "1"),
        ("bad-name", "x"),
        ("aiopsd_watch", "spoof"),
        ("job", 'we"ird\nvalue'),
    )
    src.data[labels] = (TS[:300], _values(2)[:300])
    run_poll(w, 300.0)
    src.data[labels] = (TS[:320], _values(2)[:320])
    run_poll(w, 320.0)
    [line] = [
        x for x in generate_latest(metrics.registry).decode().splitlines() if x.startswith("aiopsd_anomaly_score{")
    ]
    assert line.startswith('aiopsd_anomaly_score{aiopsd_metric="http_latency",aiopsd_watch="w",job="we\\"ird\\nvalue"}')
    store.close()
