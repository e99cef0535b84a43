"""NAB scores and streaming cost of every registered anomaly detector on the nab-dev corpus.

    python bench/anomaly.py [--data DIR] [--quick] [--detector NAME ...]

Each series is streamed through a fresh detector (``fit`` on nothing, then one
``update`` per point, as the daemon does), scored with NAB's three profiles at
the detector's own threshold (``anomaly_score >= 1``) and at the corpus-wide
threshold that maximises each profile. Cost: points per second of the
``update`` loop per CPU second of this process (one core; CPU time, so other
load on the machine does not count against it), and the pickled state of a
series at the end of the series (largest over the corpus).
"""

from __future__ import annotations

import argparse
import pickle
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aiopsd.backtest.data import SeriesFile, discover, read_series, read_windows, windows_for
from aiopsd.backtest.nab import PROFILES, LabelledFile, label_file, optimise_threshold, score_corpus
from aiopsd.detectors.anomaly import DETECTORS, make_detector

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "nab-dev"
QUICK = ("default", "adaptive", "decompose")
SLOW = ("stl", "holt_winters")


@dataclass
class Run:
    name: str
    labelled: list[tuple[LabelledFile, np.ndarray]]
    points: int
    seconds: float
    state_bytes: int


def run(name: str, series: list[tuple[SeriesFile, LabelledFile]]) -> Run:
    labelled: list[tuple[LabelledFile, np.ndarray]] = []
    points = 0
    seconds = 0.0
    state = 0
    for s, labels in series:
        ts = s.timestamps.tolist()
        vs = s.values.tolist()
        det = make_detector(name).fit(np.empty(0), np.empty(0))
        update = det.update
        t0 = time.process_time()
        out = [update(t, v).anomaly_score for t, v in zip(ts, vs, strict=True)]
        seconds += time.process_time() - t0
        points += len(out)
        state = max(state, len(pickle.dumps(det)))
        labelled.append((labels, np.array(out, dtype=np.float64)))
    return Run(name, labelled, points, seconds, state)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="NAB layout: data/ and windows.json")
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    parser.add_argument("--detector", action="append", help="detector name (repeatable)")
    args = parser.parse_args()
    names = args.detector or (list(QUICK) if args.quick else
                              [n for n in DETECTORS if n != "default"] + ["default"])
    windows = read_windows(args.data / "windows.json")
    series: list[tuple[SeriesFile, LabelledFile]] = []
    for path, rel in discover([args.data / "data"]):
        s = read_series(path, rel)
        spans = windows_for(windows, s) or []
        series.append((s, label_file(rel.as_posix(), s.timestamps, spans)))
    n_windows = sum(lab.n_windows for _, lab in series)
    print(f"corpus: {args.data.name}, {len(series)} series, {sum(len(s.values) for s, _ in series)} points, "
          f"{n_windows} windows\n")
    header = ("| detector | standard | low FP | low FN | standard (opt) | low FP (opt) | low FN (opt) "
              "| TP/FP/FN at 1 | points/s/core | state bytes |")
    print(header)
    print("|" + "---|" * header.count(" | ") + "---|")
    runs: list[Run] = []
    for name in names:
        r = run(name, series)
        runs.append(r)
        own = [score_corpus(r.labelled, p, 1.0) for p in PROFILES]
        best = [optimise_threshold(r.labelled, p) for p in PROFILES]
        cells = [f"{x.score:.1f}" for x in own] + [f"{x.score:.1f} @{x.threshold:.3g}" for x in best]
        print(f"| {name} | " + " | ".join(cells) + f" | {own[0].tp}/{own[0].fp}/{own[0].fn} "
              f"| {r.points / r.seconds:,.0f} | {r.state_bytes:,} |", flush=True)
    default = next((r for r in runs if r.name == "default"), None)
    if default is not None:
        print("\ndefault by category (own threshold; each category normalised on its own windows):\n")
        print("| category | windows | standard | low FP | low FN |")
        print("|---|---|---|---|---|")
        by_cat: dict[str, list[tuple[LabelledFile, np.ndarray]]] = defaultdict(list)
        for lab, sc in default.labelled:
            by_cat[lab.name.split("/")[0]].append((lab, sc))
        for cat, files in sorted(by_cat.items()):
            w = sum(lab.n_windows for lab, _ in files)
            if w == 0:
                fp = sum(score_corpus([f], PROFILES[0], 1.0).fp for f in files)
                print(f"| {cat} | 0 | (no windows: {fp} false positives) | | |")
                continue
            cells = [f"{score_corpus(files, p, 1.0).score:.1f}" for p in PROFILES]
            print(f"| {cat} | {w} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
