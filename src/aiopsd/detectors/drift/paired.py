"""Champion vs challenger on the same rows: per-row scores, paired differences, a bootstrap bound.

Pure numerics, no I/O. A metric is turned into a per-row *score* where higher is better and
whose mean is the metric (sign-adjusted): ``accuracy`` -> 1 for a right answer, 0 for a wrong
one; ``mae`` -> ``-|y - p|``; ``mse`` -> ``-(y - p)^2``. The challenger's advantage is then the
mean of the paired differences ``d = score_challenger - score_champion`` over the same rows,
exactly "challenger's metric minus champion's" in metric units (for MAE: champion's minus
challenger's). Its uncertainty is a percentile bootstrap of that mean, resampling *rows* (so
the pairing is kept): a challenger is judged on the lower bound, never on the point estimate.

Only metrics that are means of a per-row score are offered: the bootstrap of a mean needs no
refitting and is exact and cheap (for accuracy the differences take three values, so the
resampled means come from multinomial counts: O(resamples), whatever the rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

PairedMetric = Literal["accuracy", "mae", "mse"]
RESAMPLES = 2000
_CHUNK_CELLS = 4_000_000  # resampled rows drawn at once (32 MB of float64): memory stays bounded
_FEW_VALUES = 64

Array = npt.NDArray[np.float64]


def row_scores(metric: PairedMetric, y: npt.ArrayLike, pred: npt.ArrayLike) -> Array:
    """Per-row score, higher is better; its mean is the metric (accuracy) or minus it (mae, mse)."""
    out: Array
    if metric == "accuracy":
        out = (np.asarray(y) == np.asarray(pred)).astype(np.float64)
        return out
    err = np.asarray(y, dtype=np.float64) - np.asarray(pred, dtype=np.float64)
    out = -np.abs(err) if metric == "mae" else -(err * err)
    return out


def metric_value(metric: PairedMetric, mean_score: float) -> float:
    """The metric back from a mean row score (accuracy as is, mae/mse positive again)."""
    return mean_score if metric == "accuracy" else -mean_score


@dataclass(frozen=True)
class Bound:
    """The mean of some values and its two-sided ``confidence`` bootstrap interval [low, high]."""

    rows: int
    mean: float
    low: float
    high: float
    confidence: float


def bootstrap_mean(values: npt.ArrayLike, *, confidence: float, resamples: int = RESAMPLES, seed: int = 0) -> Bound:
    """Percentile bootstrap of the mean (rows resampled with replacement; deterministic for a seed)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        return Bound(0, float("nan"), float("nan"), float("nan"), confidence)
    rng = np.random.default_rng(seed)
    uniq, counts = np.unique(v, return_counts=True)
    if len(uniq) <= _FEW_VALUES:
        draws = rng.multinomial(n, counts / n, size=resamples)
        means = draws @ uniq / n
    else:
        per = max(1, _CHUNK_CELLS // n)
        parts = []
        for start in range(0, resamples, per):
            idx = rng.integers(0, n, size=(min(per, resamples - start), n))
            parts.append(v[idx].mean(axis=1))
        means = np.concatenate(parts)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Bound(n, float(v.mean()), float(low), float(high), confidence)


@dataclass(frozen=True)
class Comparison:
    """Challenger vs champion on ``rows`` paired rows; ``advantage`` is the challenger's, in metric units."""

    metric: PairedMetric
    rows: int
    champion: float
    challenger: float
    advantage: Bound

    def wins_by(self, min_improvement: float) -> bool:
        """The challenger is better by ``min_improvement`` at the interval's lower bound."""
        return self.rows > 0 and self.advantage.low >= min_improvement and self.advantage.low > 0.0


def compare(
    metric: PairedMetric, champion_scores: Array, challenger_scores: Array, *, confidence: float, seed: int = 0
) -> Comparison:
    """Paired comparison of per-row scores of the same rows (see :func:`row_scores`)."""
    if champion_scores.shape != challenger_scores.shape:
        raise ValueError("champion and challenger must be scored on the same rows")
    d = challenger_scores - champion_scores
    bound = bootstrap_mean(d, confidence=confidence, seed=seed)
    n = bound.rows
    return Comparison(
        metric=metric,
        rows=n,
        champion=metric_value(metric, float(champion_scores.mean())) if n else float("nan"),
        challenger=metric_value(metric, float(challenger_scores.mean())) if n else float("nan"),
        advantage=bound,
    )


def regressed(scores: Array, *, baseline: float, margin: float, confidence: float, seed: int = 0) -> tuple[bool, Bound]:
    """Is the mean row score below ``baseline - margin`` even at its upper bound? (all in score units)"""
    bound = bootstrap_mean(scores, confidence=confidence, seed=seed)
    return bound.rows > 0 and bound.high < baseline - margin, bound
