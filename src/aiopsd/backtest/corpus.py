"""A generated, labelled corpus of monitoring-like series (deterministic by seed), scored the NAB way.

Families (each one a cross-validation group in ``bench/anomaly.py``), at a
5-minute step over 14 days (4032 points), with the traits of real monitoring data:

* ``requests``: request rate with daily and weekly seasonality, Poisson counts
  with heavy-tailed (Pareto) bursts, counter resets (one low sample);
* ``cpu``: CPU percent with a daily cycle, saturating at 100 %, quantised to 0.1;
* ``latency``: log-normal latency with step changes after deploys (normal, not labelled);
* ``memory``: memory with a slow leak and restarts (sawtooth), quantised to MiB;
* ``queue``: small integer queue depths, bursty (quantised, mostly zero).

Every series misses scrapes (NaN runs). Anomalies injected (0 to 2 a series):
``spike``, ``level_shift``, ``noise`` (changed noise), ``no_season``
(vanished seasonality) and ``flatline``. Labels are NAB windows: 10 % of the
series divided by the number of anomalies, starting a little before the
anomaly (as NAB centres its windows on the labelled point).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from aiopsd.backtest.nab import LabelledFile, label_file

FAMILIES = ("requests", "cpu", "latency", "memory", "queue")
ANOMALIES = ("spike", "level_shift", "noise", "no_season", "flatline")
STEP = 300.0
N_POINTS = 4032
_DAY = 288


@dataclass(frozen=True)
class GeneratedSeries:
    name: str
    family: str
    timestamps: npt.NDArray[np.float64]
    values: npt.NDArray[np.float64]
    windows: list[tuple[float, float]]
    anomalies: list[str]

    def labels(self) -> LabelledFile:
        return label_file(self.name, self.timestamps, self.windows)


def _season(rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
    """Daily shape (sharpened sine with a random phase) times a weekday/weekend factor, mean about 1."""
    i = np.arange(n)
    phase = rng.uniform(0, 2 * np.pi)
    daily = np.clip(np.sin(2 * np.pi * i / _DAY + phase), -0.6, None)
    weekend = np.where(((i // _DAY) % 7) >= 5, rng.uniform(0.5, 0.85), 1.0)
    return (1.0 + rng.uniform(0.3, 0.7) * daily) * weekend


def _base(family: str, rng: np.random.Generator, n: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The series without anomalies, and its seasonal factor (for ``no_season``)."""
    season = _season(rng, n)
    if family == "requests":
        rate = rng.uniform(20, 400) * season
        bursts = (rng.random(n) < 0.01) * rng.pareto(2.5, n) * rate * 0.5
        v = rng.poisson(rate + bursts).astype(np.float64)
        for r in rng.integers(0, n, rng.integers(0, 3)):
            v[r] = v[r] * rng.uniform(0, 0.3)  # counter reset: one short rate() sample
        return v, season
    if family == "cpu":
        busy = rng.uniform(30, 80)
        v = busy * season + rng.normal(0, rng.uniform(1, 5), n)
        return np.asarray(np.round(np.clip(v, 0, 100), 1), dtype=np.float64), season
    if family == "latency":
        typical = np.full(n, rng.uniform(0.05, 0.5))
        for d in rng.integers(0, n, rng.integers(1, 4)):
            typical[d:] *= rng.uniform(0.85, 1.2)  # deploys move latency a little
        v = typical * (1 + 0.2 * (season - 1)) * rng.lognormal(0, rng.uniform(0.1, 0.3), n)
        return v, season
    if family == "memory":
        base, slope = rng.uniform(200, 2000), rng.uniform(0.02, 0.2)
        restart = rng.integers(600, 1800)
        v = base + slope * (np.arange(n) % restart) + rng.normal(0, 2, n)
        return np.round(v), np.ones(n)
    if family == "queue":
        lam = rng.uniform(0.3, 3) * season
        v = rng.poisson(lam * (1 + (rng.random(n) < 0.02) * rng.pareto(2.0, n))).astype(np.float64)
        return v, season
    raise ValueError(f"unknown family {family!r}")


def _inject(
    kind: str,
    v: npt.NDArray[np.float64],
    season: npt.NDArray[np.float64],
    at: int,
    rng: np.random.Generator,
    family: str,
) -> None:
    n = v.size
    scale = float(np.nanstd(v[max(0, at - 600) : at]) or 1.0)
    level = float(np.nanmedian(v[max(0, at - 600) : at]))
    sign = 1.0 if rng.random() < 0.7 else -1.0
    if kind == "spike":
        width = int(rng.integers(1, 4))
        v[at : at + width] += sign * rng.uniform(6, 12) * scale
    elif kind == "level_shift":
        v[at:] += sign * rng.uniform(3, 6) * scale
    elif kind == "noise":
        end = min(n, at + int(rng.integers(100, 400)))
        v[at:end] = level + (v[at:end] - level) * rng.uniform(3, 5)
    elif kind == "no_season":
        end = min(n, at + int(rng.integers(300, 900)))
        v[at:end] = v[at:end] / season[at:end] * float(np.mean(season))
    elif kind == "flatline":
        end = min(n, at + int(rng.integers(60, 300)))
        v[at:end] = v[at - 1] if np.isfinite(v[at - 1]) else level
    if family == "cpu":
        np.clip(v, 0, 100, out=v)
    if family in ("requests", "queue"):
        np.clip(v, 0, None, out=v)


def generate(seed: int = 0, per_family: int = 40, n: int = N_POINTS) -> list[GeneratedSeries]:
    """``per_family`` series of each family (5 families: 200 series by default), deterministic by ``seed``."""
    out: list[GeneratedSeries] = []
    for f_i, family in enumerate(FAMILIES):
        for k in range(per_family):
            rng = np.random.default_rng([seed, f_i, k])
            v, season = _base(family, rng, n)
            n_anom = int(rng.choice([0, 1, 1, 2]))
            kinds = [str(rng.choice(ANOMALIES)) for _ in range(n_anom)]
            if family == "memory":  # no seasonality to lose
                kinds = ["spike" if x == "no_season" else x for x in kinds]
            lo = max(int(0.15 * n) + 100, 2 * _DAY * 7 // 2)
            width = int(0.1 * n / max(n_anom, 1))
            slots = np.linspace(lo, n - 300, n_anom + 1).astype(int)
            starts = [int(rng.integers(slots[j], slots[j + 1] - width)) for j in range(n_anom)]
            for kind, at in zip(kinds, starts, strict=True):
                _inject(kind, v, season, at, rng, family)
            for gap in rng.integers(0, n, rng.integers(0, 6)):  # missed scrapes
                v[gap : gap + int(rng.integers(1, 6))] = np.nan
            t = 1.7e9 + np.arange(n, dtype=np.float64) * STEP
            windows = [
                (float(t[max(0, at - width // 4)]), float(t[min(n - 1, at + width - width // 4)])) for at in starts
            ]
            out.append(GeneratedSeries(f"{family}/{family}_{k:03d}", family, t, v, windows, kinds))
    return out
