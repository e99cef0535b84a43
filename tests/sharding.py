"""Shared by the sharding service test and ``bench/scale.py replicas``: a series exporter that a real
Prometheus scrapes, sharded daemon configs, and the audit of the scoring ledger.

The ledger (``shard_ledger``, written in the same transaction as each fenced watermark) says which
replica scored which points ``(since, until]`` of which shard, and in how many series. The audit
reads it as the proof a user needs: per shard, consecutive ranges must chain exactly (an overlap is
a point scored twice, a hole is a point nobody scored) and every row must cover every series the
shard has (fewer is a series left unscored).
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from aiopsd.sources.prometheus.shards import shard_in
from tests.support import write_config

METRIC = "shard_demo"


@contextmanager
def series_exporter(n: int) -> Iterator[str]:
    """``n`` gauges ``shard_demo{series="s00042"}`` (a smooth daily-like wave per series) on /metrics;
    yields the ``host:port`` to scrape. The body is rebuilt at most once a second."""
    cache: dict[str, Any] = {"at": 0.0, "body": b""}
    lock = threading.Lock()

    def body() -> bytes:
        with lock:
            now = time.time()
            if now - cache["at"] >= 1.0:
                lines = [f"# TYPE {METRIC} gauge"]
                for i in range(n):
                    value = 10.0 + 2.0 * math.sin(now / 300.0 + i) + 0.1 * math.sin(now * 7.3 + i * 1.7)
                    lines.append(f'{METRIC}{{series="s{i:05d}"}} {value:.6f}')
                cache["body"], cache["at"] = ("\n".join(lines) + "\n").encode(), now
            return bytes(cache["body"])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = body()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="exporter", daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def sharded_config(
    workdir: Path,
    *,
    state_url: str,
    prometheus_url: str,
    shards: int,
    ttl: float,
    interval: float,
    lookback: float,
    max_series: int = 200_000,
    enabled: bool = True,
    detector: str = "mad",
    label: str | None = None,
) -> Path:
    """A daemon config with one watch of the exporter's series; with ``label``, Prometheus labels each
    series with its shard (see :func:`scrape_job`) and the query selects this replica's shards."""
    (workdir / "rules").mkdir(parents=True, exist_ok=True)
    return write_config(
        workdir,
        state_url=state_url,
        prometheus={"url": prometheus_url, "timeout": "60s"},
        watches=[
            {
                "name": "demo",
                "query": METRIC if label is None else f'{METRIC}{{{label}=~"$__shards"}}',
                "step": f"{interval:g}s",
                "interval": f"{interval:g}s",
                "lookback": f"{lookback:g}s",
                "detector": detector,
                "max_series": max_series,
            }
        ],
        ha={"lease_ttl": f"{ttl:g}s"},
        sharding={"enabled": enabled, "shards": shards, "lease_ttl": f"{ttl:g}s", "label": label},
        log_level="INFO",
        dispatch_interval="1s",  # the daemon's default (the tests' write_config uses 0.5s)
    )


def scrape_job(target: str, shards: int | None = None, label: str | None = None) -> dict[str, Any]:
    """Prometheus' scrape job for the exporter; with ``label``, each series gets its shard in that label
    (``hashmod`` of its name and ``series`` label, modulus ``shards``)."""
    job: dict[str, Any] = {"job_name": "demo", "static_configs": [{"targets": [target]}]}
    if label is not None:
        job["metric_relabel_configs"] = [
            {"source_labels": ["__name__", "series"], "target_label": label, "modulus": shards, "action": "hashmod"}
        ]
    return job


def series_by_shard(prometheus_url: str, shards: int, label: str | None = None) -> dict[int, int]:
    """How many series of the watch's query each shard has (label sets exactly as Prometheus returns them)."""
    r = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": METRIC}, timeout=30)
    r.raise_for_status()
    out: dict[int, int] = {}
    for item in r.json()["data"]["result"]:
        s = shard_in({str(k): str(v) for k, v in item["metric"].items()}, shards, label)
        out[s] = out.get(s, 0) + 1
    return out


@dataclass
class Audit:
    """What the ledger of one watch shows, per shard and in total."""

    overlaps: list[tuple[int, float, float]] = field(default_factory=list)  # (shard, since, previous until)
    holes: list[tuple[int, float, float]] = field(default_factory=list)  # (shard, previous until, since)
    short_rows: list[tuple[int, float, int, int]] = field(default_factory=list)  # (shard, until, scored, expected)
    last: dict[int, tuple[float, str]] = field(default_factory=dict)  # shard -> (until, holder) of its last row
    series_scored_twice: int = 0  # series in ledger rows that overlap an earlier row of their shard
    points_scored_twice: int = 0  # the points of those overlaps (series x steps)

    @property
    def clean(self) -> bool:
        return not (self.overlaps or self.holes or self.short_rows)


def audit(rows: list[dict[str, Any]], expected: dict[int, int], *, step: float, after: float = -math.inf) -> Audit:
    """Check the ledger rows (oldest first) of one watch; ``expected``: series per shard; rows ending at or
    before ``after`` are not checked for completeness (the series may not all have been scraped yet)."""
    out = Audit()
    by_shard: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        by_shard.setdefault(int(r["shard"]), []).append(r)
    for shard, rs in sorted(by_shard.items()):
        rs.sort(key=lambda r: (r["since"], r["until"]))
        for prev, cur in itertools.pairwise(rs):
            if cur["since"] < prev["until"]:
                out.overlaps.append((shard, cur["since"], prev["until"]))
                out.series_scored_twice += int(cur["series"])
                out.points_scored_twice += round((prev["until"] - cur["since"]) / step) * int(cur["series"])
            elif cur["since"] > prev["until"]:
                out.holes.append((shard, prev["until"], cur["since"]))
        for r in rs:
            if r["until"] > after and int(r["series"]) < expected.get(shard, 0):
                out.short_rows.append((shard, r["until"], int(r["series"]), expected[shard]))
        out.last[shard] = (float(rs[-1]["until"]), str(rs[-1]["holder"]))
    return out
