"""A real Prometheus scrapes the daemon's /metrics while a watch on a plain selector runs.

The watched series carry ``__name__``; copied into the exported score gauges it would make
Prometheus reject the whole scrape (every self-metric lost).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from aiopsd.demo import stack
from tests.support import running_daemon, wait_for, write_config


def _query(prom_url: str, expr: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{prom_url}/api/v1/query", params={"query": expr}, timeout=5)
    r.raise_for_status()
    return list(r.json()["data"]["result"])


def test_prometheus_scrapes_the_daemon_while_a_plain_selector_watch_runs(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    port = stack.free_port()
    prom = stack.start_prometheus(
        tmp_path / "prom",
        interval="1s",
        scrape=[{"job_name": "aiopsd", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
    )
    try:
        cfg = write_config(
            tmp_path,
            listen=f"127.0.0.1:{port}",
            prometheus={"url": prom.url},
            watches=[
                {
                    "name": "targets",
                    "query": "up",
                    "step": "1s",
                    "interval": "1s",
                    "lookback": "1m",
                    "detector": "mad",
                    "detector_params": {"window": 20, "min_periods": 3},
                }
            ],
        )
        with running_daemon(cfg) as d:

            def scores() -> str | None:
                text = httpx.get(f"{d.url}/metrics", timeout=5).text
                return text if "aiopsd_anomaly_score{" in text else None

            text = wait_for(scores, 60, what="an exported score")
            # Scrapes after the score gauges exist must succeed and store the scores.
            found = wait_for(
                lambda: _query(prom.url, 'aiopsd_anomaly_score{aiopsd_watch="targets"}'),
                15,
                what="the score stored by Prometheus",
            )
            [up] = _query(prom.url, 'up{job="aiopsd"}')
            assert up["value"][1] == "1"
            assert _query(prom.url, "aiopsd_rules_loaded")
            assert found[0]["metric"]["aiopsd_metric"] == "up" and found[0]["metric"]["job"] == "aiopsd"
            assert "__name__" not in text.split("aiopsd_anomaly_score{", 1)[1].split("}", 1)[0]
    finally:
        prom.stop()
