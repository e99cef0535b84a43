"""NAB scoring (Numenta Anomaly Benchmark), implemented from the published method.

Lavin & Ahmad, "Evaluating Real-time Anomaly Detection Algorithms - the Numenta
Anomaly Benchmark" (2015) and the NAB scorer it describes:

* each labelled anomaly has a window; a detection is a point whose score is at
  or above the threshold;
* inside a window, only the best (earliest) detection counts, rewarded with the
  scaled sigmoid of its position in the window (``A_TP`` at the window's left
  edge, about 0 at its right edge); a window with no detection costs ``A_FN``;
* a detection outside every window costs ``A_FP`` times the scaled sigmoid of
  its distance past the previous window (a full ``A_FP`` if there was none, and
  once it is more than three window widths past);
* the probationary period (the first 15% of a file, at most 750 points) is not
  scored;
* raw scores are summed over the corpus and normalised so that the null
  detector (never fires) scores 0 and the perfect detector scores 100.

The threshold is either given (a detector's own ``score >= 1``) or the single
threshold that maximises the corpus score of a profile (how NAB reports).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

PROBATION_PERCENT = 0.15
_OUTSIDE = -1
_PROBATION = -2


@dataclass(frozen=True)
class Profile:
    """NAB application profile: weights of true positives, false positives and false negatives."""

    name: str
    tp: float
    fp: float
    fn: float


PROFILES: tuple[Profile, ...] = (
    Profile("standard", tp=1.0, fp=0.11, fn=1.0),
    Profile("reward_low_FP_rate", tp=1.0, fp=0.22, fn=1.0),
    Profile("reward_low_FN_rate", tp=1.0, fp=0.11, fn=2.0),
)


def scaled_sigmoid(position: float) -> float:
    """NAB's scaled sigmoid: 1 well before a window's end, 0 at it, -1 far after it."""
    if position > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


_MAX_TP = scaled_sigmoid(-1.0)


def probation_length(n: int) -> int:
    """Number of leading points NAB does not score: 15% of the file, at most 750."""
    return int(min(math.floor(PROBATION_PERCENT * n), PROBATION_PERCENT * 5000))


@dataclass(frozen=True)
class LabelledFile:
    """Per-point NAB bookkeeping for one file, independent of any detector.

    ``window`` is the window index of each point (``-1`` outside windows, ``-2``
    in the probationary period); ``sweep`` is the unweighted sigmoid score a
    detection at that point would earn (positive in windows, negative outside).
    """

    name: str
    window: npt.NDArray[np.int64]
    sweep: npt.NDArray[np.float64]
    n_windows: int


def label_file(name: str, timestamps: npt.NDArray[np.float64], windows: Sequence[tuple[float, float]]) -> LabelledFile:
    """Build the per-point labels of a file from window limits (same unit as ``timestamps``).

    A window covers every point with ``start <= t <= end``; windows must not overlap.
    """
    n = len(timestamps)
    ts = np.asarray(timestamps, dtype=np.float64)
    window_of = np.full(n, _OUTSIDE, dtype=np.int64)
    bounds: list[tuple[int, int]] = []
    for start, end in sorted(windows):
        left = int(np.searchsorted(ts, start, side="left"))
        right = int(np.searchsorted(ts, end, side="right")) - 1
        if right < left:
            continue
        bounds.append((left, right))
    sweep = np.empty(n, dtype=np.float64)
    prev_right: int | None = None
    prev_width = 0.0
    k = 0
    for i in range(n):
        while k < len(bounds) and bounds[k][1] < i:
            prev_right, prev_width = bounds[k][1], float(bounds[k][1] - bounds[k][0] + 1)
            k += 1
        if k < len(bounds) and bounds[k][0] <= i:
            left, right = bounds[k]
            width = float(right - left + 1)
            window_of[i] = k
            sweep[i] = scaled_sigmoid(-(right - i + 1) / width) / _MAX_TP
        elif prev_right is None:
            sweep[i] = -1.0
        else:
            sweep[i] = scaled_sigmoid(abs(prev_right - i) / max(prev_width - 1.0, 1.0))
    window_of[: probation_length(n)] = _PROBATION
    scored = {int(w) for w in window_of if w >= 0}
    # Renumber so windows that fall wholly in the probationary period vanish.
    remap = {w: j for j, w in enumerate(sorted(scored))}
    window = np.array([remap.get(int(w), int(w)) if w >= 0 else int(w) for w in window_of], dtype=np.int64)
    return LabelledFile(name, window, sweep, len(scored))


@dataclass(frozen=True)
class NabResult:
    """Corpus score of one profile at one threshold."""

    profile: str
    threshold: float
    raw: float
    score: float
    tp: int
    fp: int
    fn: int


def _normalise(raw: float, n_windows: int, profile: Profile) -> float:
    null = -profile.fn * n_windows
    perfect = profile.tp * n_windows
    if perfect == null:
        return 0.0
    return 100.0 * (raw - null) / (perfect - null)


def score_corpus(
    files: Sequence[tuple[LabelledFile, npt.NDArray[np.float64]]], profile: Profile, threshold: float
) -> NabResult:
    """NAB score of a corpus: each file's labels with the detector's scores, at ``threshold``."""
    raw = 0.0
    tp = fp = fn = 0
    total_windows = 0
    for labels, scores in files:
        detected = np.asarray(scores, dtype=np.float64) >= threshold
        outside = detected & (labels.window == _OUTSIDE)
        fp += int(outside.sum())
        raw += profile.fp * float(labels.sweep[outside].sum())
        for w in range(labels.n_windows):
            hits = detected & (labels.window == w)
            if hits.any():
                tp += 1
                raw += profile.tp * float(labels.sweep[hits].max())
            else:
                fn += 1
                raw -= profile.fn
        total_windows += labels.n_windows
    return NabResult(profile.name, threshold, raw, _normalise(raw, total_windows, profile), tp, fp, fn)


def optimise_threshold(files: Sequence[tuple[LabelledFile, npt.NDArray[np.float64]]], profile: Profile) -> NabResult:
    """The single corpus-wide threshold that maximises the profile's score (NAB's sweep).

    Points are visited from the highest score down; lowering the threshold past
    a score adds that point's detection, so each distinct score is one candidate.
    """
    window_ids: list[npt.NDArray[np.int64]] = []
    offset = 0
    for labels, _ in files:
        ids = labels.window.copy()
        ids[ids >= 0] += offset
        window_ids.append(ids)
        offset += labels.n_windows
    total_windows = offset
    ids_all = np.concatenate(window_ids) if window_ids else np.empty(0, dtype=np.int64)
    sweep_all = np.concatenate([lab.sweep for lab, _ in files]) if files else np.empty(0, dtype=np.float64)
    scores_all = (
        np.concatenate([np.asarray(s, dtype=np.float64) for _, s in files]) if files else np.empty(0, dtype=np.float64)
    )
    keep = (ids_all != _PROBATION) & np.isfinite(scores_all)
    ids_all, sweep_all, scores_all = ids_all[keep], sweep_all[keep], scores_all[keep]
    order = np.argsort(-scores_all, kind="stable")
    best_tp = [math.nan] * total_windows
    raw = -profile.fn * total_windows
    tp = fp = 0
    best = NabResult(profile.name, math.inf, raw, _normalise(raw, total_windows, profile), 0, 0, total_windows)
    sorted_scores = scores_all[order].tolist()
    sorted_ids = ids_all[order].tolist()
    sorted_sweep = sweep_all[order].tolist()
    n = len(sorted_scores)
    for j in range(n):
        w = sorted_ids[j]
        s = sorted_sweep[j]
        if w == _OUTSIDE:
            fp += 1
            raw += profile.fp * s
        else:
            old = best_tp[w]
            if math.isnan(old):
                tp += 1
                best_tp[w] = s
                raw += profile.fn + profile.tp * s
            elif s > old:
                best_tp[w] = s
                raw += profile.tp * (s - old)
        if (j + 1 == n or sorted_scores[j + 1] != sorted_scores[j]) and raw > best.raw:
            best = NabResult(
                profile.name, sorted_scores[j], raw, _normalise(raw, total_windows, profile), tp, fp, total_windows - tp
            )
    return best
