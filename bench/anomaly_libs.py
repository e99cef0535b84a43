"""Library candidates for bench/anomaly.py, each wrapped in the streaming detector contract.

Each wrapper turns a library's streaming score into a *raw* score per point
(causal: ``update`` sees one point at a time). The bench computes the raw
scores once and derives every threshold of the grid from them with
:func:`suppress` (the same warm-up and one-report-per-anomaly rest period as
the ``context`` detector), so a library is judged with the protocol every
detector goes through. A library that is not installed is skipped with a note
(``pip install -e '.[bench]'`` installs them).

* ``river_hst``: river ``HalfSpaceTrees`` on a shingle of the last 8 values,
  min-max scaled by river's running ``MinMaxScaler``.
* ``stumpy_discord``: stumpy ``stumpi`` (incremental left matrix profile):
  the z-normalised distance of the newest 32-point subsequence to its
  nearest earlier neighbour in the last 1,024 points, divided by its maximum
  ``2 sqrt(m)`` (a time-series discord score in [0, 1]).

Not wrapped, with the reason printed by the bench: ruptures (offline change
points: no causal per-point update), statsforecast MSTL (a batch model: per
point it would refit, in a refit-every-N wrapper it is ``stl`` with another
decomposition), the slow pysad models (see :data:`SKIPPED`).

* ``pysad_loda``: pysad ``LODA`` (100 random projections, a 10-bin histogram
  each) on a shingle of the last 8 values.
* ``pysad_knncad``: pysad ``KNNCAD`` (the KNN conformal detector of NAB),
  univariate, probationary period 300.
"""

from __future__ import annotations

import importlib
import math
from collections import deque
from collections.abc import Callable
from typing import Any, Self

import numpy as np

from aiopsd.detectors.anomaly.base import FloatArray, Score, Scores, stream_scores

BELOW_ONE = 0.999


def _module(name: str) -> Any:
    return importlib.import_module(name)


class _RawCandidate:
    """A library score per point, no threshold (``anomaly_score`` is the raw score)."""

    def get_params(self) -> dict[str, Any]:
        return {}

    def fit(self, timestamps: FloatArray, values: FloatArray) -> Self:
        self._start()
        for v in values.tolist():
            if math.isfinite(v):
                self._raw(v)
        return self

    def update(self, timestamp: float, value: float) -> Score:
        if not math.isfinite(value):
            return Score(math.nan)
        return Score(self._raw(value))

    def score(self, timestamps: FloatArray, values: FloatArray) -> Scores:
        return stream_scores(self, timestamps, values)

    def _start(self) -> None:
        raise NotImplementedError

    def _raw(self, value: float) -> float:
        raise NotImplementedError


class RiverHST(_RawCandidate):
    shingle = 8

    def _start(self) -> None:
        river = _module("river.anomaly"), _module("river.preprocessing"), _module("river.compose")
        anomaly, preprocessing, compose = river
        self.model = compose.Pipeline(
            preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(n_trees=10, height=8, window_size=250, seed=0)
        )
        self.window: deque[float] = deque(maxlen=self.shingle)

    def _raw(self, value: float) -> float:
        self.window.append(value)
        if len(self.window) < self.shingle:
            return 0.0
        x = {f"x{i}": v for i, v in enumerate(self.window)}
        s = float(self.model.score_one(x))
        self.model.learn_one(x)
        return s


class StumpyDiscord(_RawCandidate):
    m = 32
    keep = 1024

    def _start(self) -> None:
        self.stumpy = _module("stumpy")
        self.first: list[float] = []
        self.stream: Any = None

    def _raw(self, value: float) -> float:
        if self.stream is None:
            self.first.append(value)
            if len(self.first) < 4 * self.m:
                return 0.0
            self.stream = self.stumpy.stumpi(np.array(self.first), m=self.m, egress=True)
            return 0.0
        self.stream.update(value)
        d = float(self.stream.left_P_[-1])
        return min(1.0, d / (2 * math.sqrt(self.m))) if math.isfinite(d) else 0.0


class PysadLODA(_RawCandidate):
    """pysad ``LODA`` (random projections, one histogram each) on a shingle of the last 8 values."""

    shingle = 8

    def _start(self) -> None:
        self.model = _module("pysad.models").LODA(num_bins=10, num_random_cuts=100, random_state=0)
        self.window: deque[float] = deque(maxlen=self.shingle)

    def _raw(self, value: float) -> float:
        self.window.append(value)
        if len(self.window) < self.shingle:
            return 0.0
        s = float(self.model.fit_score_partial(np.array(self.window)))
        return s if math.isfinite(s) else 0.0


class PysadKNNCAD(_RawCandidate):
    """pysad ``KNNCAD`` (NAB's KNN conformal anomaly detector): a conformal p-value surprise in [0, 1]."""

    def _start(self) -> None:
        self.model = _module("pysad.models").KNNCAD(probationary_period=300)

    def _raw(self, value: float) -> float:
        s = float(self.model.fit_score_partial(np.array([value])))
        return s if math.isfinite(s) else 0.0


# name -> (module it needs, factory, thresholds of the grid, applied to the raw score by `suppress`)
CANDIDATES: dict[str, tuple[str, Callable[[], _RawCandidate], tuple[float, ...]]] = {
    "river_hst": ("river", RiverHST, (0.9, 0.93, 0.95, 0.97, 0.99)),
    "stumpy_discord": ("stumpy", StumpyDiscord, (0.3, 0.4, 0.5, 0.6)),
    "pysad_loda": ("pysad", PysadLODA, (1.5, 2.0, 3.0, 5.0)),  # unbounded score (about 1 on normal points)
    "pysad_knncad": ("pysad", PysadKNNCAD, (0.98, 0.99, 0.995, 0.999)),
}
# Run only when named (--detector): stumpi streams at about 170 points/s/core here (numba compiled), so the
# two corpora (930,000 points) would take an hour and a half of CPU a setting.
SLOW_CANDIDATES = ("stumpy_discord",)
SKIPPED = {
    "ruptures": "an offline change-point search over the whole series, with no causal per-point update",
    "statsforecast_mstl": "a batch model; refit every N points it is the `stl` row with another decomposition",
    "pysad_xstream": "pysad xStream streams at about 500 points/s here: 30 CPU-minutes a pass over the two corpora",
    "pysad_rshash": "pysad RSHash streams at about 1,700 points/s here (10 CPU-minutes a pass); not scored this round",
    "pysad_rrcf": "pysad RobustRandomCutForest is slower than xStream; not scored",
}


def available(name: str) -> bool:
    try:
        _module(CANDIDATES[name][0])
    except ImportError:
        return False
    return True


def suppress(raw: FloatArray, threshold: float, rest: int = 150, warmup: int = 300) -> FloatArray:
    """``raw / threshold``, capped below 1 in the first ``warmup`` points and for ``rest`` points after a report."""
    out = raw / threshold
    since = rest
    for i, a in enumerate(out.tolist()):
        since += 1
        if i < warmup or since <= rest:
            out[i] = min(a, BELOW_ONE) if math.isfinite(a) else a
        elif a >= 1.0:
            since = 0
    return out
