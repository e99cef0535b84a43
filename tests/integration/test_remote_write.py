"""Scores remote-written to a real Prometheus (--web.enable-remote-write-receiver) and queried back.

The writer queues while Prometheus is away and retries with backoff; a sample Prometheus
refuses (out of order) is dropped and counted, not retried forever. A daemon whose watch
exports with ``remote_write`` puts every series' score and band in Prometheus and keeps
``/metrics`` to its self-metrics (no series is anomalous here).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from aiopsd.config.sources import RemoteWriteConfig
from aiopsd.daemon.metrics import Metrics
from aiopsd.daemon.remote_write import RemoteWriter
from aiopsd.demo import stack
from tests.support import running_daemon, wait_for, write_config


def _query(prom_url: str, expr: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{prom_url}/api/v1/query", params={"query": expr}, timeout=5)
    r.raise_for_status()
    return list(r.json()["data"]["result"])


def _sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_writer_retries_until_prometheus_answers_and_drops_what_it_refuses(tmp_path: Path) -> None:
    port = stack.free_port()
    metrics = Metrics()
    writer = RemoteWriter(
        RemoteWriteConfig(timeout=2, max_backoff=0.5), f"http://127.0.0.1:{port}/api/v1/write", metrics
    )
    now = time.time()
    labels = {"__name__": "app_latency", "instance": "web-1", "Zone": "eu"}
    writer.push("lat", [("lat{...}", labels, now - 30, (0.4, 10.0, 8.0, 12.0))])
    wait_for(lambda: _sample(metrics, "aiopsd_remote_write_failures_total") >= 2, 30, what="failed attempts")
    assert _sample(metrics, "aiopsd_remote_write_queue_points") == 1  # kept while Prometheus is away
    prom = stack.start_prometheus(tmp_path / "prom", scrape=[], port=port, remote_write_receiver=True)
    try:
        wait_for(lambda: _sample(metrics, "aiopsd_remote_write_samples_total", result="sent") == 4, 30, what="sent")
        assert _sample(metrics, "aiopsd_remote_write_queue_points") == 0
        [score] = wait_for(lambda: _query(prom.url, 'aiopsd_anomaly_score{aiopsd_watch="lat"}'), 15, what="score")
        assert score["metric"] == {
            "__name__": "aiopsd_anomaly_score",
            "aiopsd_watch": "lat",
            "aiopsd_metric": "app_latency",
            "instance": "web-1",
            "Zone": "eu",
        }
        assert float(score["value"][1]) == 0.4
        [upper] = _query(prom.url, 'aiopsd_anomaly_yhat_upper{aiopsd_watch="lat"}')
        assert float(upper["value"][1]) == 12.0
        # Older than what Prometheus holds for the series: refused (4xx), counted, not retried.
        writer.push("lat", [("lat{...}", labels, now - 60, (0.1, float("nan"), float("nan"), float("nan")))])
        wait_for(
            lambda: _sample(metrics, "aiopsd_remote_write_samples_total", result="rejected") == 1, 30, what="refusal"
        )
        assert _sample(metrics, "aiopsd_remote_write_queue_points") == 0
    finally:
        writer.stop()
        prom.stop()


def test_daemon_remote_writes_every_series_and_keeps_metrics_small(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    prom_port = stack.free_port()
    prom = stack.start_prometheus(
        tmp_path / "prom",
        interval="1s",
        port=prom_port,
        remote_write_receiver=True,
        scrape=[
            {"job_name": f"self{i}", "static_configs": [{"targets": [f"127.0.0.1:{prom_port}"]}]} for i in range(3)
        ],
    )
    try:
        cfg = write_config(
            tmp_path,
            prometheus={"url": prom.url},
            watches=[
                {
                    "name": "targets",
                    "query": 'up{job=~"self.*"}',
                    "step": "1s",
                    "interval": "1s",
                    "lookback": "1m",
                    "detector": "mad",
                    "detector_params": {"window": 20, "min_periods": 3},
                    "export": {"scores": "remote_write"},
                }
            ],
        )
        with running_daemon(cfg) as d:
            written = wait_for(
                lambda: len(_query(prom.url, 'aiopsd_anomaly_yhat{aiopsd_watch="targets"}')) == 3,
                90,
                what="three series' yhat written to Prometheus",
            )
            assert written
            jobs = {s["metric"]["job"] for s in _query(prom.url, 'aiopsd_anomaly_score{aiopsd_watch="targets"}')}
            assert jobs == {"self0", "self1", "self2"}
            text = httpx.get(f"{d.url}/metrics", timeout=5).text
            assert "aiopsd_anomaly_score{" not in text  # nothing anomalous: no per-series score on /metrics
            assert 'aiopsd_remote_write_samples_total{result="sent"}' in text
            assert "aiopsd_remote_write_lag_seconds" in text
    finally:
        prom.stop()
