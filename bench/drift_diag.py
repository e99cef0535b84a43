"""Where power is lost: per table, shift kind and column, which test came closest to rejecting.

For every window the target column's tests are read back as a share of the
window's budget (``p_i / (alpha * w_i)``: <= 1 rejects), so a miss shows which
test was nearest and by how much; for unchanged windows the test that raised a
false alarm is named. ``nice -n 19 python bench/drift_diag.py --windows 100 [--tables a,b]``.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as ``python bench/drift_diag.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from aiopsd.detectors.drift import DEFAULT_ALPHA, profile_reference, test_window
from bench.drift import SCENARIOS, applicable, make_window, split
from bench.drift_tables import load_bed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--windows", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--tables", default="")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = ap.parse_args()
    wanted = set(filter(None, args.tables.split(",")))
    print(
        "| table | scenario | column | windows | flagged | right column | nearest test on misses "
        "(count, median p_adj/alpha) | false alarms by column/test |"
    )
    print("|---|---|---|---:|---:|---:|---|---|")
    for d in load_bed():
        if wanted and d.name not in wanted:
            continue
        s = split(d, args.seed)
        prof = profile_reference(s.ref, categorical=d.categorical)
        for scenario in args.scenarios.split(","):
            if not applicable(s, scenario):
                continue
            rng = np.random.default_rng([args.seed, SCENARIOS.index(scenario), len(s.ref)])
            per_col: dict[str | None, list[int]] = collections.defaultdict(lambda: [0, 0, 0])
            near: dict[str | None, dict[str, list[float]]] = collections.defaultdict(
                lambda: collections.defaultdict(list)
            )
            fa: collections.Counter[str] = collections.Counter()
            for i in range(args.windows):
                w, col = make_window(s, scenario, i, rng)
                res = test_window(prof, w)
                t = per_col[col]
                t[0] += 1
                t[1] += res.drift
                t[2] += bool(col in res.drifted)
                if col is None:
                    for name in res.drifted:
                        fa[f"{name}/{res.columns[name].test}"] += 1
                elif col not in res.drifted:
                    c = res.columns[col]
                    near[col][c.test].append((c.p_value or 1.0) / DEFAULT_ALPHA)
            for col, (n, flagged, right) in sorted(per_col.items(), key=lambda kv: str(kv[0])):
                misses = "; ".join(f"{t} {len(v)}x {np.median(v):.2g}" for t, v in near[col].items())
                fas = ", ".join(f"{k} {v}" for k, v in fa.most_common(4))
                print(
                    f"| {d.name} | {scenario} | {col or '-'} | {n} | {flagged} | {right} | {misses} | {fas} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
