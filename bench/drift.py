"""Drift detection quality and cost: aiopsd's tests vs Evidently's DataDriftPreset at its defaults.

Quality: real data sets bundled with statsmodels (nothing is downloaded):

* ``fair``      - 1974 affairs survey, 6,366 rows: 5 numeric, 4 categorical columns
                  (occupation codes, religiousness, marriage rating as labels);
* ``randhie``   - RAND health insurance experiment, 20,190 rows: 5 numeric, 5 categorical;
* ``fertility`` - World Bank fertility rate per country and year (1960-2013) in long
                  form, 11,826 rows: country code (219 categories), year, and the rate,
                  which has *real* missing values (~13 %).

Each is shuffled with a fixed seed and split in half: reference (profiled once) and a
pool that windows of 100 rows are drawn from. Scenarios per window:

* none     - the window as drawn (a false alarm if flagged);
* mean     - one numeric column (round robin) shifted by 0.5 reference std;
* category - in one categorical column whose top category has >= 10 % share, half of
             the window's rows of the top category moved to the most common category
             with < 5 % reference share (or to an unseen one when none is rare);
* missing  - 20 % of the window's rows set missing in one column (round robin).

Cost: a 100,000 x 25 window against a 10,000-row reference, rows bootstrapped from
``randhie`` (15 numeric, 10 categorical columns), and ours at several row counts.

``python bench/drift.py`` (full) or ``--quick``.
"""

from __future__ import annotations

import argparse
import functools
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from aiopsd.detectors.drift import DEFAULT_ALPHA, profile_reference, test_window
from aiopsd.reports.evidently_report import run_data_drift

SCENARIOS = ("none", "mean", "category", "missing")
TARGET = {"none": "<= 1 %", "mean": ">= 95 %", "category": ">= 95 %", "missing": ">= 95 %"}


@dataclass
class Data:
    name: str
    frame: pd.DataFrame
    numeric: list[str]
    categorical: list[str]


def load_sets() -> list[Data]:
    import statsmodels.api as sm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fair = sm.datasets.fair.load_pandas().data
        rand = sm.datasets.randhie.load_pandas().data
        fert = sm.datasets.fertility.load_pandas().data
    fcat = ["rate_marriage", "religious", "occupation", "occupation_husb"]
    for c in fcat:
        fair[c] = fair[c].astype(int).map(lambda v, c=c: f"{c}{v}")
    rcat = ["idp", "hlthg", "hlthf", "hlthp", "lncoins"]
    for c in rcat:
        rand[c] = rand[c].map(lambda v, c=c: f"{c}={v:g}")
    years = [c for c in fert.columns if c.isdigit()]
    long = fert.melt(id_vars=["Country Code"], value_vars=years, var_name="year", value_name="fertility")
    long = long.rename(columns={"Country Code": "country"})
    long["year"] = long["year"].astype(int)
    return [
        Data("fair", fair, [c for c in fair.columns if c not in fcat], fcat),
        Data("randhie", rand, [c for c in rand.columns if c not in rcat], rcat),
        Data("fertility", long[["country", "year", "fertility"]], ["year", "fertility"], ["country"]),
    ]


@dataclass
class Split:
    data: Data
    ref: pd.DataFrame
    pool: pd.DataFrame
    std: dict[str, float] = field(default_factory=dict)
    cat_moves: dict[str, tuple[str, str]] = field(default_factory=dict)


def split(d: Data, seed: int) -> Split:
    shuffled = d.frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    half = len(shuffled) // 2
    s = Split(d, shuffled.iloc[:half].reset_index(drop=True), shuffled.iloc[half:].reset_index(drop=True))
    s.std = {c: float(s.ref[c].std(skipna=True)) for c in d.numeric}
    for c in d.categorical:
        share = s.ref[c].value_counts(normalize=True)
        if share.iloc[0] < 0.10:
            continue
        rare = share[share < 0.05]
        s.cat_moves[c] = (str(share.index[0]), str(rare.index[0]) if len(rare) else "__unseen__")
    return s


def make_window(s: Split, scenario: str, i: int, rng: np.random.Generator) -> tuple[pd.DataFrame, str | None]:
    w = s.pool.iloc[rng.choice(len(s.pool), size=100, replace=False)].reset_index(drop=True)
    if scenario == "mean":
        col = s.data.numeric[i % len(s.data.numeric)]
        w[col] = w[col] + 0.5 * s.std[col]
        return w, col
    if scenario == "category":
        cols = list(s.cat_moves)
        col = cols[i % len(cols)]
        top, to = s.cat_moves[col]
        rows = np.flatnonzero((w[col] == top).to_numpy())
        moved = rng.choice(rows, size=len(rows) // 2, replace=False) if len(rows) >= 2 else rows
        w.loc[moved, col] = to
        return w, col
    if scenario == "missing":
        cols = s.data.numeric + s.data.categorical
        col = cols[i % len(cols)]
        w.loc[rng.choice(100, size=20, replace=False), col] = np.nan
        return w, col
    return w, None


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


def quality(sets: list[Split], windows: int, ev_windows: int, seed: int) -> dict[tuple[str, str], Tally]:
    out: dict[tuple[str, str], Tally] = {}
    for s in sets:
        prof = profile_reference(s.ref, categorical=s.data.categorical)
        for scenario in SCENARIOS:
            t = Tally()
            if scenario == "category" and not s.cat_moves:
                out[(s.data.name, scenario)] = t
                continue
            rng = np.random.default_rng([seed, SCENARIOS.index(scenario), len(s.ref)])
            for i in range(windows):
                w, col = make_window(s, scenario, i, rng)
                res = test_window(prof, w)
                t.n += 1
                t.ours += res.drift
                t.ours_right += bool(col is not None and col in res.drifted)
                if i < ev_windows:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        ev = run_data_drift(s.ref, w, categorical=s.data.categorical)
                    t.ev_n += 1
                    t.ev_dataset += ev.dataset_drift
                    t.ev_any += bool(ev.drifted_columns)
                    t.ev_right += bool(col is not None and col in ev.drifted_columns)
            out[(s.data.name, scenario)] = t
            print(f"  .. {s.data.name:9s} {scenario:8s} done", flush=True)
    return out


def print_quality(results: dict[tuple[str, str], Tally], names: list[str]) -> None:
    print("\n### Detection quality (windows of 100 rows; % of windows flagged)\n")
    print(f"aiopsd: Holm-corrected family-wise alpha {DEFAULT_ALPHA}; Evidently: DataDriftPreset() defaults "
          "(dataset drift = share of drifted columns >= 0.5).\n")
    header = ("| data set | scenario | target | aiopsd flagged | aiopsd right column | windows | "
              "Evidently dataset drift | Evidently any column | Evidently right column | Evidently windows |")
    print(header)
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for scenario in SCENARIOS:
        total = Tally()
        for name in names:
            t = results[(name, scenario)]
            total.add(t)
            right = pct(t.ours_right, t.n) if scenario != "none" else "-"
            print(f"| {name} | {scenario} | {TARGET[scenario]} | {pct(t.ours, t.n)} | "
                  f"{right} | {t.n} | {pct(t.ev_dataset, t.ev_n)} | "
                  f"{pct(t.ev_any, t.ev_n)} | {pct(t.ev_right, t.ev_n) if scenario != 'none' else '-'} | "
                  f"{t.ev_n} |")
        print(f"| **all** | **{scenario}** | {TARGET[scenario]} | **{pct(total.ours, total.n)}** | "
              f"{pct(total.ours_right, total.n) if scenario != 'none' else '-'} | {total.n} | "
              f"{pct(total.ev_dataset, total.ev_n)} | {pct(total.ev_any, total.ev_n)} | "
              f"{pct(total.ev_right, total.ev_n) if scenario != 'none' else '-'} | {total.ev_n} |")


def bootstrap_frame(base: pd.DataFrame, numeric: list[str], categorical: list[str], rows: int,
                    rng: np.random.Generator) -> pd.DataFrame:
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
    print(f"\n### Cost: {cur_rows:,} x {cur.shape[1]} window vs 10,000-row reference "
          "(15 numeric + 10 categorical columns, bootstrapped from randhie)\n")
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
    ap.add_argument("--evidently-windows", type=int, default=None,
                    help="Evidently windows per data set and scenario (1-3 s each, so fewer than ours)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    windows = args.windows or (40 if args.quick else 300)
    ev_windows = args.evidently_windows if args.evidently_windows is not None else (5 if args.quick else 20)
    sets = [split(d, args.seed) for d in load_sets()]
    print("### Data sets (bundled with statsmodels; shuffled, split in half)\n")
    print("| data set | reference rows | pool rows | numeric | categorical | missing cells (reference) | "
          "category scenario moves |\n|---|---:|---:|---|---|---:|---|")
    for s in sets:
        moves = ", ".join(f"{c}: {a}→{b}" for c, (a, b) in s.cat_moves.items()) or "n/a (no category >= 10 %)"
        print(f"| {s.data.name} | {len(s.ref):,} | {len(s.pool):,} | {', '.join(s.data.numeric)} | "
              f"{', '.join(s.data.categorical)} | {s.ref.isna().to_numpy().mean():.1%} | {moves} |")
    t0 = time.perf_counter()
    results = quality(sets, windows, ev_windows, args.seed)
    print_quality(results, [s.data.name for s in sets])
    print(f"\n(quality run took {time.perf_counter() - t0:.0f} s)")
    cost(sets[1].data, args.seed, args.quick)


if __name__ == "__main__":
    main()
