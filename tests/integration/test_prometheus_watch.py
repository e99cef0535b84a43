"""A real Prometheus with promtool-backfilled history: incremental polling, and missing data is not an anomaly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from aiopsd.config import PrometheusConfig, WatchConfig
from aiopsd.daemon.metrics import Metrics
from aiopsd.demo import stack
from aiopsd.errors import SourceError
from aiopsd.models import FindingKind
from aiopsd.sources.prometheus.client import PrometheusClient
from aiopsd.sources.prometheus.watch import PrometheusWatch
from aiopsd.store import StateStore
from tests.support import run_poll


def test_backfilled_history_polled_incrementally_and_outage_marks_source_down(tmp_path: Path) -> None:
    now = time.time()
    start = now - 1800
    samples = []
    for i in range(1800):
        t = start + i
        value = 5.0 + (i % 7) * 0.1 + (40.0 if 1500 <= i < 1510 else 0.0)  # one incident in history
        samples.append(("app_latency", {"job": "app", "instance": "web-1"}, value, t))
    stack.backfill(tmp_path / "data", stack.to_openmetrics(samples, {"app_latency": "gauge"}), tmp_path)
    prom = stack.start_prometheus(tmp_path, scrape=[], tsdb_dir=tmp_path / "data")
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    cfg = PrometheusConfig(url=prom.url, timeout=5, overlap=30)
    source = PrometheusClient(cfg)
    try:
        series = source.query_range("w", "app_latency", start, now, 1.0)
        assert len(series) == 1
        assert series[0].labels == {"__name__": "app_latency", "instance": "web-1", "job": "app"}
        assert len(series[0].values) >= 1700
        assert max(series[0].values) == pytest.approx(45.6)

        watch = WatchConfig(name="lat", query="app_latency", step=1, interval=1, lookback=1800, detector="mad")
        metrics = Metrics()
        w = PrometheusWatch(watch, cfg, source, store, metrics)
        # History up to now only warms the detector: an incident in the past is not "new".
        assert run_poll(w, now) == []
        assert store.get_cursor("prometheus:lat") == {"watermark": float(int(now)), "series": 1, "refused_series": 0}
        w2 = PrometheusWatch(watch, cfg, source, store, metrics)
        # A restarted watcher picks up from the stored watermark; nothing new happened since.
        assert run_poll(w2, now + 1) == []

        # A newly started watcher whose watermark predates the incident scores it (it was never seen).
        store.put_cursor("prometheus:lat", {"watermark": start + 1400})
        w3 = PrometheusWatch(watch, cfg, source, store, metrics)
        found = run_poll(w3, now)
        assert [f.kind for f in found][:1] == [FindingKind.ANOMALY]
        opened = found[0]
        assert opened.starts_at.timestamp() == pytest.approx(start + 1500, abs=1)
        assert store.list_sources()[0]["up"] is True
    finally:
        prom.stop()
    # Prometheus gone: a source-health fact, never an anomaly, and never an empty "all fine".
    with pytest.raises(SourceError, match="unreachable"):
        source.query_range("w", "app_latency", now - 60, now, 1.0)
    before = len(store.list_findings())
    assert run_poll(w3, now + 30) == []
    assert len(store.list_findings()) == before
    [src] = store.list_sources()
    assert src["up"] is False and "unreachable" in src["error"]
    store.close()
