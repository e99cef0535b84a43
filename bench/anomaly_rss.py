"""Resident memory per series: RSS growth of a real process holding N detectors, divided by N.

    python bench/anomaly_rss.py --detector default --series 10000 --points 800

Each detector is fitted on nothing and fed ``--points`` points of its own
seasonal, noisy series, all held
at once, as the daemon holds one detector per series. 800 points fill every
window of ``default``: its history ring is preallocated, the forecast exists
after 48 points and the calibration window holds 640. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiopsd.detectors.anomaly import make_detector
from aiopsd.detectors.anomaly.context import ContextDetector

if __package__ in (None, ""):  # run as ``python bench/anomaly_rss.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.anomaly_libs import CANDIDATES


def factory(name: str) -> Callable[[], Any]:
    """A registered detector, the context view alone, or a library candidate of bench/anomaly_libs.py."""
    if name == "context":
        return ContextDetector
    if name in CANDIDATES:
        return CANDIDATES[name][1]
    return lambda: make_detector(name)


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", default="default")
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=800)
    args = parser.parse_args()
    import numpy as np

    build = factory(args.detector)
    build().fit(np.empty(0), np.empty(0)).update(0.0, 1.0)  # imports, caches
    gc.collect()
    before = rss_bytes()
    rng = random.Random(0)
    held = []
    t0 = time.process_time()
    for k in range(args.series):
        det = build().fit(np.empty(0), np.empty(0))
        phase, noise, level = rng.random() * 6.3, 0.05 + rng.random(), 10 + 100 * rng.random()
        for i in range(args.points):
            det.update(i * 300.0, level + 5 * math.sin(i / 45.8 + phase) + rng.gauss(0, noise))
        held.append(det)
        if k == 0:
            gc.collect()
    seconds = time.process_time() - t0
    gc.collect()
    after = rss_bytes()
    print(
        json.dumps(
            {
                "detector": args.detector,
                "series": args.series,
                "points": args.points,
                "rss_per_series": (after - before) / args.series,
                "points_per_s": args.series * args.points / seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
