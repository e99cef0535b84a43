"""CPU cost of shadow scoring on the drift watch path at 1,000 rows/s of prediction log.

Two drift watches poll the same JSONL prediction log side by side in one process: one plain, one
with ``lifecycle.shadow`` and a challenger in shadow (so every labelled row is also scored by the
challenger, paired with the champion's logged prediction, and kept). Each simulated second 1,000
rows (10 numeric features, inline labels) are appended to the log, then each watch runs one poll
through the daemon's source runner (tail, windows of 500 rows, drift tests against a 2,000-row
reference, findings stored, cursor committed); which watch polls first alternates. CPU is
``time.process_time`` around each poll (appending the rows is not counted). The challenger is a
scikit-learn pipeline (StandardScaler + LogisticRegression), scored once per poll. Measured at the
default poll interval (30 s: 30,000 rows a poll) and at 5 s and 1 s (more polls, smaller batches).

``nice -n 19 python bench/shadow.py`` (per interval at least 120 s of log and 16 measured polls).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from aiopsd.config import PredictionLogConfig
from aiopsd.daemon.metrics import Metrics
from aiopsd.daemon.runner import SourceRunner
from aiopsd.model_store.directory import DirectoryStore
from aiopsd.sources.predictions.watch import DriftWatch
from aiopsd.store import StateStore

FEATURES = [f"f{i}" for i in range(10)]
RATE = 1000
WEIGHTS = np.linspace(-1.0, 1.0, len(FEATURES))


def draw(rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, np.ndarray]:
    x = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=FEATURES)
    return x, (x.to_numpy() @ WEIGHTS + rng.normal(scale=0.5, size=n) > 0).astype(int)


def set_up(root: Path, rng: np.random.Generator) -> tuple[Path, Any]:
    x, y = draw(rng, 4000)
    champion = make_pipeline(StandardScaler(), LogisticRegression()).fit(x.iloc[:40], y[:40])
    challenger = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    store = DirectoryStore(root / "models")
    store.promote(store.register(champion, metrics={}).number)
    store.register(challenger, metrics={}, status="shadow")
    ref = x.iloc[:2000].assign(prediction=champion.predict(x.iloc[:2000]), label=y[:2000])
    ref.to_csv(root / "ref.csv", index=False)
    return root / "ref.csv", champion


def append(log: Path, rng: np.random.Generator, champion: Any, t0: float, n: int) -> None:
    x, y = draw(rng, n)
    pred = champion.predict(x)
    values = x.to_numpy()
    with log.open("a") as fh:
        for i in range(n):
            row = {
                "timestamp": t0 + i / n,
                "model": "m",
                "version": "1",
                "features": dict(zip(FEATURES, values[i].round(6).tolist(), strict=True)),
                "prediction": int(pred[i]),
                "label": int(y[i]),
            }
            fh.write(json.dumps(row) + "\n")


def watch(root: Path, name: str, ref: Path, log: Path, shadow: bool) -> tuple[DriftWatch, SourceRunner]:
    cfg: dict[str, Any] = {
        "model": "m",
        "path": str(log),
        "reference": str(ref),
        "window": {"rows": 500},
        "reports": False,
        "model_dir": str(root / "models"),
    }
    if shadow:
        cfg["lifecycle"] = {"shadow": {"rows": 1_000_000}, "min_improvement": 0.02}
    store = StateStore(f"sqlite:///{root / f'{name}.db'}")
    metrics = Metrics()
    return DriftWatch(PredictionLogConfig.model_validate(cfg), store, metrics, root / name), SourceRunner(
        store, metrics
    )


def _timed(fn: Any, cpu: dict[str, float]) -> Any:
    def timed(*args: Any) -> Any:
        start = time.process_time()
        try:
            return fn(*args)
        finally:
            cpu["lifecycle"] += time.process_time() - start

    return timed


def measure(seconds: int, interval: int) -> tuple[dict[str, float], int]:
    """CPU seconds per second of log of both watches, and the rows the challenger scored."""
    with tempfile.TemporaryDirectory(prefix="aiopsd-bench-shadow-") as tmp:
        root = Path(tmp)
        rng = np.random.default_rng(0)
        ref, champion = set_up(root, rng)
        log = root / "m.jsonl"
        log.touch()
        plain = watch(root, "plain", ref, log, shadow=False)
        shadowed = watch(root, "shadow", ref, log, shadow=True)
        cpu = {"plain": 0.0, "shadow": 0.0, "lifecycle": 0.0}
        lifecycle = shadowed[0].lifecycle
        assert lifecycle is not None
        for name in ("refresh", "observe", "commit"):  # the shadow's own CPU, measured directly
            setattr(lifecycle, name, _timed(getattr(lifecycle, name), cpu))
        t0 = time.time() - seconds - 10 * interval
        polls = seconds // interval
        for poll in range(polls + 1):  # poll 0 warms both up (imports, first refresh) and is not counted
            append(log, rng, champion, t0 + poll * interval, RATE * interval)
            order = [("plain", plain), ("shadow", shadowed)]
            for key, (w, runner) in order if poll % 2 else order[::-1]:
                kept = cpu["lifecycle"]
                start = time.process_time()
                runner.run(w, t0 + (poll + 1) * interval)
                if poll:
                    cpu[key] += time.process_time() - start
                else:
                    cpu["lifecycle"] = kept
        sh = shadowed[0].lifecycle
        assert sh is not None and sh.shadow is not None
        return {k: v / (polls * interval) for k, v in cpu.items()}, sh.shadow.pairs.rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=120, help="at least this many seconds of log per interval")
    ap.add_argument("--polls", type=int, default=16, help="at least this many measured polls per interval")
    args = ap.parse_args()
    print(f"\n### Shadow scoring on the drift watch path ({RATE:,} rows/s of prediction log)\n")
    print(
        "| poll interval | drift watch | CPU per second of log | share of one core | rows scored by the challenger"
        " | shadow adds (difference) | shadow's own CPU / watch without |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|")
    for interval in (30, 5, 1):  # 30 s is the prediction log's default interval
        per, compared = measure(max(args.seconds, args.polls * interval), interval)
        overhead = (per["shadow"] - per["plain"]) / per["plain"]
        own = per["lifecycle"] / per["plain"]
        print(f"| {interval} s | without shadow | {per['plain'] * 1000:.1f} ms | {per['plain']:.1%} | - | | |")
        print(
            f"| {interval} s | with shadow | {per['shadow'] * 1000:.1f} ms | {per['shadow']:.1%} | {compared:,} |"
            f" {overhead:+.1%} | {own:+.1%} |"
        )
    print(
        "\nTarget: shadow adds <= +5 % CPU to the drift watch. 'difference' compares the two watches' CPU"
        " (noisy on a shared machine); 'own CPU' is the time spent in the lifecycle's refresh, observe and"
        " commit (scoring, pairing, keeping, progress writes), over the plain watch's CPU."
    )


if __name__ == "__main__":
    main()
