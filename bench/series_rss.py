"""RSS per watched series of the real process, once every per-series buffer is at its cap.

    nice -n 10 python bench/series_rss.py [--series 0 500 2000] [--detector default] [--polls 300]

Each count runs in a fresh Python process: one PrometheusWatch reads ``lookback`` of a synthetic
source (bench/soak.py's), then polls ``polls`` more steps on a simulated clock, so the
detector windows and chart buffers have reached their caps. The process's RSS is read
from /proc; the per-series figure is the slope against the 0-series process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, sys, tempfile, time
from pathlib import Path
from aiopsd.config import PrometheusConfig, WatchConfig
from aiopsd.daemon.metrics import Metrics
from aiopsd.daemon.runner import SourceRunner
from aiopsd.sources.prometheus.watch import PrometheusWatch
from aiopsd.store import StateStore
from bench.soak import SyntheticSource, rss_mb
n, detector, polls = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
with tempfile.TemporaryDirectory() as tmp:
    store = StateStore(f"sqlite:///{Path(tmp) / 's.db'}")
    watch = WatchConfig(name="rss", query="q", step=5, interval=5, lookback=3600, detector=detector,
                        max_series=max(n, 1))
    metrics = Metrics()
    w = PrometheusWatch(watch, PrometheusConfig(url="http://synthetic", overlap=10), SyntheticSource(n), store, metrics)
    runner = SourceRunner(store, metrics)
    now = 1_700_000_000.0
    started = time.process_time()
    for i in range(polls + 1):
        runner.run(w, now + 5 * i)
    print(json.dumps({"series": len(w.series), "rss_mb": rss_mb(), "cpu_s": time.process_time() - started}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, nargs="+", default=[0, 500, 2000])
    ap.add_argument("--detector", default="default")
    ap.add_argument("--polls", type=int, default=300)
    args = ap.parse_args()
    root = Path(__file__).resolve().parents[1]
    rows = []
    with tempfile.TemporaryDirectory():
        for n in args.series:
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(n), args.detector, str(args.polls)],
                capture_output=True,
                text=True,
                check=True,
                cwd=root,
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = rows[0]["rss_mb"] if rows and rows[0]["series"] == 0 else None
    print(f"detector {args.detector}, {args.polls} polls after the lookback")
    print(f"{'series':>7} {'rss_mb':>8} {'kb_per_series':>13} {'cpu_s':>7}")
    for r in rows:
        per = "" if base is None or r["series"] == 0 else f"{1000 * (r['rss_mb'] - base) / r['series']:.1f}"
        print(f"{r['series']:>7} {r['rss_mb']:>8.1f} {per:>13} {r['cpu_s']:>7.1f}")


if __name__ == "__main__":
    main()
