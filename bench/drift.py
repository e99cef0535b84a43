"""Drift detection quality and cost: aiopsd's tests vs Evidently's DataDriftPreset at its defaults.

Quality on the 14-table development bed of ``bench/drift_tables.py`` (bundled
statsmodels / scikit-learn tables and seeded generated ones; nothing is
downloaded). Each table is shuffled with a fixed seed: the reference is its
first half (at most 2,000 rows, profiled once), windows of 100 rows are drawn
from the rest. Shift kinds per window:

* none     - the window as drawn (a false alarm if flagged);
* mean     - one numeric column (round robin) shifted by 0.5 reference std;
* category - in one categorical column whose top category has >= 10 % share, half
             of the window's rows of the top category moved to a rare category
             (the most common one with < 1 % reference share, or an unseen one);
* missing  - 20 % of the window's rows set missing in one column (round robin);
* surge    - 10 % of the window's rows of one categorical column set to that rare
             category (bot traffic from one small country, one merchant surging);
* mean-int - one integer-valued numeric column (round robin) shifted by the whole
             number ceil(0.5 std): the values stay on the reference's grid. ``mean``
             moves every value of a count, year or rounded column off that grid,
             which the point masses' "new values" cell sees whatever the location
             test does; this kind measures the location shift alone.

Tables in ``drift_tables.TUNE`` were used to choose the weights (``bench/drift_cv.py``,
which also runs leave-one-table-out); the others are reported separately as held out. Evidently runs are cached on disk
(``bench/.cache/``) by table, kind, window and seed, since they cost ~1 s each.

Cost: a 100,000 x 25 window against a 10,000-row reference, rows bootstrapped from
``randhie`` (15 numeric, 10 categorical columns), and ours at several row counts.

``nice -n 19 python bench/drift.py`` (full) or ``--quick``.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from aiopsd.detectors.drift import DEFAULT_ALPHA, profile_reference, test_window
from aiopsd.reports.evidently_report import run_data_drift

if __package__ in (None, ""):  # run as ``python bench/drift.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import drift_perf
from bench.drift_tables import TUNE, Data, load_bed

SCENARIOS = ("none", "mean", "category", "missing", "surge", "mean-int")
TARGET = {
    "none": "<= 1 %",
    "mean": ">= 95 %",
    "category": ">= 95 %",
    "missing": ">= 95 %",
    "surge": ">= 95 %",
    "mean-int": ">= 95 %",
}
WINDOW = 100
MAX_REFERENCE = 2000
CACHE = Path(__file__).resolve().parent / ".cache"
PROTOCOL_REFERENCE = 1000


@dataclass
class Split:
    data: Data
    ref: pd.DataFrame
    pool: pd.DataFrame
    std: dict[str, float] = field(default_factory=dict)
    integer: list[str] = field(default_factory=list)
    cat_moves: dict[str, tuple[str, str]] = field(default_factory=dict)
    rare: dict[str, str] = field(default_factory=dict)


def split(d: Data, seed: int) -> Split:
    shuffled = d.frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    half = min(len(shuffled) // 2, MAX_REFERENCE)
    s = Split(d, shuffled.iloc[:half].reset_index(drop=True), shuffled.iloc[half:].reset_index(drop=True))
    s.std = {c: float(s.ref[c].std(skipna=True)) for c in d.numeric}
    s.integer = [c for c in d.numeric if s.std[c] > 0 and bool(np.all(np.mod(d.frame[c].dropna(), 1) == 0))]
    for c in d.categorical:
        share = s.ref[c].astype(str).where(s.ref[c].notna()).value_counts(normalize=True)
        rare = share[share < 0.01]
        s.rare[c] = str(rare.index[0]) if len(rare) else "__unseen__"
        if share.iloc[0] >= 0.10:
            s.cat_moves[c] = (str(share.index[0]), s.rare[c])
    return s


def make_window(s: Split, scenario: str, i: int, rng: np.random.Generator) -> tuple[pd.DataFrame, str | None]:
    w = s.pool.iloc[rng.choice(len(s.pool), size=WINDOW, replace=False)].reset_index(drop=True)
    if scenario == "mean":
        col = s.data.numeric[i % len(s.data.numeric)]
        w[col] = w[col] + 0.5 * s.std[col]
        return w, col
    if scenario == "mean-int":  # an integer column shifted by a whole number >= 0.5 SD: it stays on its grid
        col = s.integer[i % len(s.integer)]
        w[col] = w[col] + math.ceil(0.5 * s.std[col])
        return w, col
    if scenario in ("category", "surge"):
        cols = list(s.cat_moves) if scenario == "category" else list(s.rare)
        col = cols[i % len(cols)]
        w[col] = w[col].astype(object)
        if scenario == "surge":
            w.loc[rng.choice(WINDOW, size=WINDOW // 10, replace=False), col] = s.rare[col]
            return w, col
        top, to = s.cat_moves[col]
        rows = np.flatnonzero((w[col].astype(str) == top).to_numpy())
        moved = rng.choice(rows, size=len(rows) // 2, replace=False) if len(rows) >= 2 else rows
        w.loc[moved, col] = to
        return w, col
    if scenario == "missing":
        cols = s.data.numeric + s.data.categorical
        col = cols[i % len(cols)]
        w[col] = w[col].astype(object) if w[col].dtype == bool else w[col]
        w.loc[rng.choice(WINDOW, size=WINDOW // 5, replace=False), col] = np.nan
        return w, col
    return w, None


def applicable(s: Split, scenario: str) -> bool:
    return not (
        (scenario == "category" and not s.cat_moves)
        or (scenario == "surge" and not s.rare)
        or (scenario == "mean" and not s.data.numeric)
        or (scenario == "mean-int" and not s.integer)
    )


@dataclass
class Tally:
    n: int = 0
    ours: int = 0
    ours_right: int = 0
    ev_n: int = 0
    ev_dataset: int = 0
    ev_any: int = 0
    ev_right: int = 0

    def add(self, other: Tally) -> None:
        for k in vars(self):
            setattr(self, k, getattr(self, k) + getattr(other, k))


def pct(k: int, n: int) -> str:
    return "n/a" if n == 0 else f"{100.0 * k / n:.1f} %"


class EvidentlyCache:
    """Evidently verdicts on disk: (dataset drift, any column, right column) per window key."""

    def __init__(self, seed: int) -> None:
        self.path = CACHE / f"drift-evidently-{seed}.json"
        self.data: dict[str, list[bool]] = json.loads(self.path.read_text()) if self.path.exists() else {}

    def get(self, key: str, run: Callable[[], tuple[bool, bool, bool]]) -> tuple[bool, bool, bool]:
        if key not in self.data:
            self.data[key] = list(run())
        a, b, c = self.data[key]
        return a, b, c

    def save(self) -> None:
        CACHE.mkdir(exist_ok=True)
        self.path.write_text(json.dumps(self.data))


def quality(
    sets: list[Split],
    windows: int,
    ev_windows: int,
    seed: int,
    cache: EvidentlyCache | None,
    null_windows: int | None = None,
) -> dict[tuple[str, str], Tally]:
    out: dict[tuple[str, str], Tally] = {}
    for s in sets:
        prof = profile_reference(s.ref, categorical=s.data.categorical)
        for scenario in SCENARIOS:
            t = Tally()
            out[(s.data.name, scenario)] = t
            if not applicable(s, scenario):
                continue
            rng = np.random.default_rng([seed, SCENARIOS.index(scenario), len(s.ref)])
            for i in range((null_windows or windows) if scenario == "none" else windows):
                w, col = make_window(s, scenario, i, rng)
                res = test_window(prof, w)
                t.n += 1
                t.ours += res.drift
                t.ours_right += bool(col is not None and col in res.drifted)
                if cache is not None and i < ev_windows:

                    def run(w: pd.DataFrame = w, col: str | None = col, s: Split = s) -> tuple[bool, bool, bool]:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            ev = run_data_drift(s.ref, w, categorical=s.data.categorical)
                        return ev.dataset_drift, bool(ev.drifted_columns), col in ev.drifted_columns

                    ds, anyc, right = cache.get(f"{s.data.name}|{scenario}|{i}", run)
                    t.ev_n += 1
                    t.ev_dataset += ds
                    t.ev_any += anyc
                    t.ev_right += right
        if cache is not None:
            cache.save()
    return out


def print_quality(results: dict[tuple[str, str], Tally], names: list[str], ref_rows: dict[str, int]) -> None:
    print(f"\n### Detection quality (windows of {WINDOW} rows; % of windows flagged)\n")
    print(
        f"aiopsd: weighted-Bonferroni family-wise alpha {DEFAULT_ALPHA}; Evidently: DataDriftPreset() "
        "defaults (dataset drift = share of drifted columns >= 0.5). Fold: tune = the weights were "
        "chosen on this table, held-out = never looked at while tuning.\n"
    )
    print(
        "| data set | fold | scenario | target | aiopsd flagged | aiopsd right column | windows | "
        "Evidently dataset drift | Evidently any column | Evidently right column | Evidently windows |"
    )
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for scenario in SCENARIOS:
        for name in names:
            t = results[(name, scenario)]
            if t.n == 0:
                continue
            nd = scenario == "none"
            print(
                f"| {name} | {'tune' if name in TUNE else 'held-out'} | {scenario} | {TARGET[scenario]} | "
                f"{pct(t.ours, t.n)} | {'-' if nd else pct(t.ours_right, t.n)} | {t.n} | "
                f"{pct(t.ev_dataset, t.ev_n)} | {pct(t.ev_any, t.ev_n)} | "
                f"{'-' if nd else pct(t.ev_right, t.ev_n)} | {t.ev_n} |"
            )
    print("\n### Summary: tuning tables vs held-out tables (aiopsd flagged; worst table and pooled)\n")
    print(
        f"Held-out (protocol): the held-out tables with a reference of at least {PROTOCOL_REFERENCE:,} rows, "
        "the issue's protocol (1,000-2,000-row references); the smaller ones (`anes96`, `breast_cancer`, "
        "`diabetes`, `digits`) are in the held-out columns.\n"
    )
    print(
        "| scenario | target | tune worst | tune pooled | held-out worst | held-out pooled | "
        "held-out (protocol) worst | held-out (protocol) pooled | Evidently any column, pooled (all tables) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    folds: list[Callable[[str], bool]] = [
        lambda n: n in TUNE,
        lambda n: n not in TUNE,
        lambda n: n not in TUNE and ref_rows[n] >= PROTOCOL_REFERENCE,
    ]
    for scenario in SCENARIOS:
        row = [scenario, TARGET[scenario]]
        ev = Tally()
        for k, fold in enumerate(folds):
            ts = [results[(n, scenario)] for n in names if fold(n) and results[(n, scenario)].n]
            tot = Tally()
            for t in ts:
                tot.add(t)
            if k < 2:
                ev.add(tot)
            rates = [t.ours / t.n for t in ts]
            worst = (max(rates) if scenario == "none" else min(rates)) if rates else float("nan")
            row += [f"{100 * worst:.1f} %", pct(tot.ours, tot.n)]
        row.append(pct(ev.ev_any, ev.ev_n))
        print("| " + " | ".join(row) + " |")


def bootstrap_frame(
    base: pd.DataFrame, numeric: list[str], categorical: list[str], rows: int, rng: np.random.Generator
) -> pd.DataFrame:
    cols: dict[str, object] = {}
    for k in range(3):
        for c in numeric:
            cols[f"{c}_{k}"] = base[c].to_numpy()[rng.integers(0, len(base), rows)]
    for k in range(2):
        for c in categorical:
            cols[f"{c}_{k}"] = base[c].to_numpy()[rng.integers(0, len(base), rows)]
    return pd.DataFrame(cols)


def timed(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def cost(rand: Data, seed: int, quick: bool) -> None:
    rng = np.random.default_rng(seed)
    ref = bootstrap_frame(rand.frame, rand.numeric, rand.categorical, 10_000, rng)
    cats = [c for c in ref.columns if not pd.api.types.is_numeric_dtype(ref[c].dtype)]
    cur_rows = 20_000 if quick else 100_000
    cur = bootstrap_frame(rand.frame, rand.numeric, rand.categorical, cur_rows, rng)
    t_prof = timed(lambda: profile_reference(ref, categorical=cats), 3)
    prof = profile_reference(ref, categorical=cats)
    t_ours = timed(lambda: test_window(prof, cur), 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_ev = timed(lambda: run_data_drift(ref, cur, categorical=cats), 1)
    print(
        f"\n### Cost: {cur_rows:,} x {cur.shape[1]} window vs 10,000-row reference "
        "(15 numeric + 10 categorical columns, bootstrapped from randhie)\n"
    )
    print("| | seconds | speed-up |\n|---|---:|---:|")
    print(f"| aiopsd profile_reference (once per reference) | {t_prof:.3f} | |")
    print(f"| aiopsd test_window | {t_ours:.3f} | {t_ev / t_ours:.0f}x |")
    print(f"| aiopsd profile + test (cold) | {t_prof + t_ours:.3f} | {t_ev / (t_prof + t_ours):.0f}x |")
    print(f"| Evidently DataDriftPreset() report run | {t_ev:.3f} | 1x |")
    print("\n### aiopsd test_window cost by window rows (25 columns, same reference; best of 3)\n")
    print("| rows | seconds | microseconds per row |\n|---:|---:|---:|")
    sizes = [1_000, 10_000, 100_000] if quick else [1_000, 10_000, 100_000, 1_000_000]
    for n in sizes:
        w = bootstrap_frame(rand.frame, rand.numeric, rand.categorical, n, rng)
        t = timed(functools.partial(test_window, prof, w), 3)
        print(f"| {n:,} | {t:.3f} | {1e6 * t / n:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="few windows, smaller cost run")
    ap.add_argument("--windows", type=int, default=None, help="aiopsd windows per data set and scenario")
    ap.add_argument(
        "--evidently-windows",
        type=int,
        default=None,
        help="Evidently windows per data set and scenario (~1 s each, cached)",
    )
    ap.add_argument(
        "--null-windows",
        type=int,
        default=None,
        help="aiopsd windows per data set for the no-shift kind (false alarms; default --windows)",
    )
    ap.add_argument("--no-cost", action="store_true", help="skip the CBPE/DLE and cost sections")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    windows = args.windows or (60 if args.quick else 300)
    ev_windows = args.evidently_windows if args.evidently_windows is not None else (3 if args.quick else 10)
    bed = load_bed()
    sets = [split(d, args.seed) for d in bed]
    print("### Development bed (bundled with statsmodels / scikit-learn, or generated with a fixed seed)\n")
    print(
        "| data set | fold | source | reference rows | pool rows | numeric | categorical | "
        "missing cells (reference) | category moves |\n|---|---|---|---:|---:|---:|---:|---:|---|"
    )
    for s in sets:
        moves = ", ".join(f"{c}: {a}→{b}" for c, (a, b) in s.cat_moves.items()) or "n/a"
        print(
            f"| {s.data.name} | {'tune' if s.data.name in TUNE else 'held-out'} | {s.data.source} | "
            f"{len(s.ref):,} | {len(s.pool):,} | {len(s.data.numeric)} | {len(s.data.categorical)} | "
            f"{s.ref.isna().to_numpy().mean():.1%} | {moves} |"
        )
    t0 = time.perf_counter()
    results = quality(sets, windows, ev_windows, args.seed, EvidentlyCache(args.seed), args.null_windows)
    print_quality(results, [s.data.name for s in sets], {s.data.name: len(s.ref) for s in sets})
    print(f"\n(quality run took {time.perf_counter() - t0:.0f} s)")
    if args.no_cost:
        return
    drift_perf.run(args.seed)
    cost(next(d for d in bed if d.name == "randhie"), args.seed, args.quick)


if __name__ == "__main__":
    main()
