"""``bench/scale.py single``: one daemon against a real Prometheus holding N series of a noisy seasonal gauge.

A Prometheus with its remote-write receiver is fed by a separate process (:func:`feed`):
first ``lookback`` of history for every series (in time order, so nothing is out of
order), then one sample per series every ``interval``, as a scrape would add. The gauge
is bench/soak.py's: a per-series level with a slow seasonal swing, deterministic noise and
a rare spike (so incidents open and resolve). Then a real ``aiopsd run`` watches it
(one watch, the ``default`` detector, ``lookback``, ``max_series`` = N), and the bench reads,
from outside the daemon:

* CPU of the daemon process (utime + stime from /proc, % of one core) once warmed up;
* every poll's wall time (``aiopsd_source_poll_duration_seconds`` read each second; each
  poll's share of ``_sum``), p50 and max against the interval, and skipped polls
  (``aiopsd_scheduler_skipped_total``);
* the warm-up: the first poll, which reads ``lookback`` of history;
* RSS of the daemon minus a daemon watching no series, per series;
* ``/api/v1/status`` latency (a request every 0.25 s during the whole steady state);
* ``/metrics`` size and time.

Timing goals are printed against the targets of issue 16; nothing here asserts them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from tests.support import DaemonProcess, start_daemon, write_config

from aiopsd.daemon.remote_proto import Label, Sample, WriteRequest
from aiopsd.demo import stack

REPO = Path(__file__).resolve().parents[1]

METRIC = "bench_latency_seconds"
TICK = os.sysconf("SC_CLK_TCK")


def gauge(i: np.ndarray, ts: np.ndarray, step: float) -> np.ndarray:
    """Series ``i`` (array) at times ``ts`` (array): level, seasonal swing, noise, a rare spike."""
    level = 5 + (i * 7919 % 4500) / 100.0
    phase = (i * 104729 % 628) / 100.0
    # A hash of (series, time), uniform in [-0.5, 0.5): noise at any step, the same on every read.
    noise = np.modf(np.abs(np.sin(ts * 12.9898 + i * 78.233)) * 43758.5453)[0] - 0.5
    vals = level * (1 + 0.1 * np.sin(2 * np.pi * ts / 21600 + phase) + 0.04 * noise)
    return np.where((ts.astype(np.int64) // int(step) + i) % 997 == 0, vals * 4, vals)


def _write(http: httpx.Client, url: str, first: int, last: int, ts: np.ndarray, step: float) -> None:
    import cramjam

    req = WriteRequest()
    ms = (ts * 1000).astype(np.int64).tolist()
    for i in range(first, last):
        series = req.timeseries.add()
        series.labels.extend(
            [
                Label(name="__name__", value=METRIC),
                Label(name="instance", value=f"host-{i:06d}"),
                Label(name="job", value="bench"),
            ]
        )
        vals = gauge(np.full(ts.size, i), ts, step).tolist()
        series.samples.extend([Sample(value=v, timestamp=t) for v, t in zip(vals, ms, strict=True)])
    body = bytes(cramjam.snappy.compress_raw(req.SerializeToString()))
    r = http.post(url, content=body, headers={"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"})
    if r.status_code >= 300:
        raise RuntimeError(f"remote write failed: {r.status_code} {r.text[:200]}")


def feed(url: str, series: int, step: float, lookback: float, ready: Path) -> None:
    """History in time order (chunks of a few minutes for all series), then one point per series per step."""
    http = httpx.Client(timeout=120)
    now = time.time()
    end = np.floor(now / step) * step
    grid = np.arange(end - lookback, end + step / 2, step)
    started = time.monotonic()
    per = max(1, 200_000 // len(grid[:20]))
    for k in range(0, grid.size, 20):
        for first in range(0, series, per):
            _write(http, url, first, min(series, first + per), grid[k : k + 20], step)
    ready.write_text(json.dumps({"history_s": time.monotonic() - started, "samples": int(series * grid.size)}))
    t = end + step
    while True:
        time.sleep(max(0.0, t - time.time()))
        for first in range(0, series, 20_000):
            _write(http, url, first, min(series, first + 20_000), np.array([t]), step)
        t += step


class Watcher:
    """Reads the daemon from outside: /metrics each second, /api/v1/status every 0.25 s, /proc."""

    def __init__(self, d: DaemonProcess) -> None:
        self.d = d
        self.http = httpx.Client(timeout=60)
        self.polls: list[float] = []
        self.status: list[float] = []
        self.stop = threading.Event()
        self._last = (0.0, 0.0)
        self.skipped = 0.0
        self.errors = 0

    def metric(self, text: str, name: str) -> float:
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def scrape(self) -> tuple[str, float]:
        t0 = time.monotonic()
        text = self.http.get(f"{self.d.url}/metrics").text
        return text, time.monotonic() - t0

    def read_polls(self) -> None:
        try:
            text, _ = self.scrape()
        except httpx.HTTPError:
            self.errors += 1
            return
        count = self.metric(text, "aiopsd_source_poll_duration_seconds_count")
        total = self.metric(text, "aiopsd_source_poll_duration_seconds_sum")
        self.skipped = self.metric(text, 'aiopsd_scheduler_skipped_total{job="poll:scale"}')
        last_count, last_total = self._last
        if count > last_count:
            self.polls.append((total - last_total) / (count - last_count))
            self._last = (count, total)

    def run_status(self) -> None:
        while not self.stop.wait(0.25):
            t0 = time.monotonic()
            try:
                self.http.get(f"{self.d.url}/api/v1/status")
            except httpx.HTTPError:  # a timeout counts as its time
                self.errors += 1
            self.status.append(time.monotonic() - t0)


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_watching(work: Path, prom_url: str, args: argparse.Namespace, query: str) -> DaemonProcess:
    (work / "rules").mkdir(parents=True, exist_ok=True)
    cfg = write_config(
        work,
        prometheus={"url": prom_url, "timeout": "60s"},
        log_level="WARNING",
        dispatch_interval="1s",
        watches=[
            {
                "name": "scale",
                "query": query,
                "step": f"{args.interval:g}s",
                "interval": f"{args.interval:g}s",
                "lookback": f"{args.lookback:g}s",
                "detector": "default",
                "max_series": max(1, args.series),
                "export": {"scores": args.export},
            }
        ],
    )
    return start_daemon(cfg, ready_timeout=120)


def single(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        prom = stack.start_prometheus(root / "prom", scrape=[], remote_write_receiver=True)
        feeder = None
        try:
            base = start_watching(root / "base", prom.url, args, "absent_metric_for_baseline")
            time.sleep(5)  # let the empty watch poll once
            base_rss = proc_rss_mb(base.proc.pid)
            base.stop()
            ready = root / "fed.json"
            feeder = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    f"import bench.scale_single as s; s.feed({prom.url + '/api/v1/write'!r}, "
                    f"{args.series}, {args.interval}, {args.lookback}, __import__('pathlib').Path({str(ready)!r}))",
                ],
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}"},
            )
            while not ready.exists():
                if feeder.poll() is not None:
                    raise RuntimeError("feeder exited")
                time.sleep(1)
            fed = json.loads(ready.read_text())
            print(f"history: {fed['samples']:,} samples remote-written in {fed['history_s']:.0f}s", flush=True)
            d = start_watching(root / "daemon", prom.url, args, METRIC)
            try:
                report(d, args, base_rss)
            finally:
                d.stop()
        finally:
            if feeder is not None:
                feeder.kill()
            prom.stop()


def report(d: DaemonProcess, args: argparse.Namespace, base_rss: float) -> None:
    w = Watcher(d)
    started = time.monotonic()
    while not w.polls:
        time.sleep(1)
        w.read_polls()
        if time.monotonic() - started > 1800:
            raise RuntimeError("no poll finished in 30 minutes")
    warmup = w.polls[0]
    w.polls.clear()
    skipped0 = w.skipped
    status = threading.Thread(target=w.run_status, daemon=True)
    status.start()
    cpu0, t0 = proc_cpu(d.proc.pid), time.monotonic()
    metrics_times: list[tuple[int, float]] = []
    while time.monotonic() - t0 < args.minutes * 60:
        time.sleep(1)
        w.read_polls()
        if len(metrics_times) < 5 and int(time.monotonic() - t0) % 20 == 0:
            try:
                text, took = w.scrape()
            except httpx.HTTPError:
                w.errors += 1
                continue
            metrics_times.append((len(text.encode()), took))
    cpu = 100 * (proc_cpu(d.proc.pid) - cpu0) / (time.monotonic() - t0)
    w.stop.set()
    status.join()
    rss = proc_rss_mb(d.proc.pid)
    per = 1024 * (rss - base_rss) / max(args.series, 1)
    st = sorted(w.status)
    p99 = st[min(len(st) - 1, int(0.99 * len(st)))] if st else float("nan")
    size = max(s for s, _ in metrics_times) if metrics_times else 0
    mtime = max(t for _, t in metrics_times) if metrics_times else 0.0
    polls = w.polls or [float("nan")]
    row: dict[str, Any] = {
        "series": args.series,
        "interval_s": args.interval,
        "export": args.export,
        "cpu_pct_one_core": round(cpu, 1),
        "poll_p50_s": round(statistics.median(polls), 2),
        "poll_max_s": round(max(polls), 2),
        "polls": len(w.polls),
        "skipped": int(w.skipped - skipped0),
        "warmup_s": round(warmup, 1),
        "rss_mb": round(rss, 0),
        "kb_per_series": round(per, 1),
        "status_p50_ms": round(1000 * statistics.median(st), 1) if st else None,
        "status_p99_ms": round(1000 * p99, 1),
        "status_max_ms": round(1000 * st[-1], 1) if st else None,
        "metrics_kb": round(size / 1024, 1),
        "metrics_ms": round(1000 * mtime, 1),
        "http_timeouts": w.errors,
    }
    print(json.dumps(row))
    print()
    print(
        "| series | interval | export | CPU (one core) | poll p50 / max | skipped | warm-up (1st poll) "
        "| RSS | per series | status p50 / p99 / max | /metrics |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.series:,} | {args.interval:g} s | {args.export} | {row['cpu_pct_one_core']} % "
        f"| {row['poll_p50_s']} / {row['poll_max_s']} s | {row['skipped']} | {row['warmup_s']} s "
        f"| {row['rss_mb']:.0f} MB | {row['kb_per_series']} KB | {row['status_p50_ms']} / {row['status_p99_ms']} / "
        f"{row['status_max_ms']} ms | {row['metrics_kb']} KB, {row['metrics_ms']} ms |"
    )
    print(
        "targets at 100,000 series, 15 s: CPU <= 100 %, poll max < interval, warm-up <= 120 s, "
        "<= 20 KB/series, status p99 < 100 ms, /metrics < 1 MB"
    )
