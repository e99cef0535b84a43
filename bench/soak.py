"""Steady-state soak of one Prometheus watch: RSS, CPU and poll time per minute at a constant series count.

    nice -n 10 python bench/soak.py [--series 2000] [--interval 5] [--minutes 30] [--detector default]

One :class:`~aiopsd.sources.prometheus.watch.PrometheusWatch` polls a synthetic source every ``interval``
seconds of wall time, with a real SQLite state store, exactly as the daemon's scheduler
does. The source stands in for Prometheus (a real one with tens of thousands of
series would dominate this shared machine's CPU and measure Prometheus, not aiopsd):
it answers ``query_range`` with ``series`` label sets, one point per ``step``, a
seasonal value with noise and a rare spike (so incidents open and resolve). Each row
is one minute: RSS of this process, CPU of this process over that minute (% of one
core), poll p50/max and the tracked series. A flat steady state shows as RSS and CPU
that stop growing once the first ``lookback`` has been read. To compare with another
checkout, run this script with that checkout's ``src`` first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from aiopsd.config import PrometheusConfig, WatchConfig
from aiopsd.daemon.metrics import Metrics
from aiopsd.daemon.runner import SourceRunner
from aiopsd.sources.prometheus.matrix import Matrix, from_arrays
from aiopsd.sources.prometheus.watch import PrometheusWatch
from aiopsd.store import StateStore


class SyntheticSource:
    """``series`` label sets; value(t) deterministic per series, so re-reads agree (like Prometheus)."""

    def __init__(self, series: int, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        self.labels = [{"__name__": "app_latency", "instance": f"host-{i:05d}", "job": "app"} for i in range(series)]
        self.level = rng.uniform(5, 50, series)
        self.phase = rng.uniform(0, 2 * np.pi, series)

    def query_range(
        self, name: str, query: str, start: float, end: float, step: float, *, identity: bool = False
    ) -> Matrix:
        ts = np.arange(np.ceil(start / step) * step, end + step / 2, step)
        out = []
        for i, labels in enumerate(self.labels):
            noise = np.sin(ts * 12.9898 + i * 78.233) * 0.5
            vals = self.level[i] * (1 + 0.1 * np.sin(ts / 600 + self.phase[i])) + noise
            vals = np.where((ts.astype(np.int64) // int(step) + i) % 997 == 0, vals * 4, vals)
            out.append((labels, ts, vals))
        return from_arrays(out)


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize() / 1e6


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--step", type=float, default=5.0)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--lookback", type=float, default=3600.0)
    ap.add_argument("--detector", default="default")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = StateStore(f"sqlite:///{Path(tmp) / 'state.db'}")
        # max_series only where the config has it, so the same script measures older checkouts too.
        cap = {"max_series": args.series} if "max_series" in WatchConfig.model_fields else {}
        watch = WatchConfig(
            name="soak",
            query="app_latency",
            step=args.step,
            interval=args.interval,
            lookback=args.lookback,
            detector=args.detector,
            **cap,
        )
        metrics = Metrics()
        w = PrometheusWatch(
            watch, PrometheusConfig(url="http://synthetic", overlap=60), SyntheticSource(args.series), store, metrics
        )
        runner = SourceRunner(store, metrics)
        print(
            f"soak: {args.series} series, step {args.step:g}s, poll every {args.interval:g}s, "
            f"detector {args.detector}, {args.minutes:g} min"
        )
        print(
            f"{'min':>4} {'rss_mb':>8} {'cpu_%':>6} {'poll_p50_s':>10} {'poll_max_s':>10} {'polls':>5} "
            f"{'series':>6} {'findings':>8}"
        )
        started = time.monotonic()
        minute_start, cpu_start = started, cpu_seconds()
        polls: list[float] = []
        findings = 0
        minute = 0
        next_poll = started
        while time.monotonic() - started < args.minutes * 60:
            t0 = time.monotonic()
            findings += len(runner.run(w))
            polls.append(time.monotonic() - t0)
            next_poll += args.interval
            now = time.monotonic()
            if now - minute_start >= 60:
                minute += 1
                cpu = cpu_seconds()
                print(
                    f"{minute:>4} {rss_mb():>8.1f} {100 * (cpu - cpu_start) / (now - minute_start):>6.1f} "
                    f"{statistics.median(polls):>10.3f} {max(polls):>10.3f} {len(polls):>5} "
                    f"{len(w.series):>6} {findings:>8}",
                    flush=True,
                )
                minute_start, cpu_start, polls = now, cpu, []
            time.sleep(max(0.0, next_poll - time.monotonic()))
        store.close()


if __name__ == "__main__":
    main()
