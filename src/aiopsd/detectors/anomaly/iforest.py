"""IsolationForest (scikit-learn) on windowed features, refit periodically, scored in pure Python.

Features of point t: the last ``lags`` values and the step from the previous
value, all relative to the trailing median and in units of the trailing
inter-quartile range, so the forest sees shapes, not absolute levels. Every
``refit_every`` points a forest is fit on the feature vectors of the last
``history`` points. Between refits each point is scored by walking the
fitted trees in pure Python: scikit-learn's ``score_samples`` on a single
row costs milliseconds, a walk of 32 small trees a few tens of microseconds
(measured in bench/anomaly.py). The isolation score's deviation from its
training median, in robust units, goes through the shared calibrator.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

from aiopsd.detectors.anomaly._window import SortedWindow
from aiopsd.detectors.anomaly.base import DetectorBase, FloatArray, Interval, Score
from aiopsd.detectors.anomaly.calibrate import Calibrator

_EULER = 0.5772156649015329


def _path_length(n: float) -> float:
    """Average path length of an unsuccessful BST search (the isolation forest normaliser)."""
    if n <= 1:
        return 0.0
    if n <= 2:
        return 1.0
    return 2.0 * (math.log(n - 1.0) + _EULER) - 2.0 * (n - 1.0) / n


class IsolationForestDetector(DetectorBase):
    """Isolation forest on lagged, locally normalised values; calibrated to ``anomaly_score``."""

    _fitted_attr = "values_"
    _parameter_constraints = {
        "lags": Interval(int, 1, 64),
        "history": Interval(int, 32),
        "refit_every": Interval(int, 1),
        "n_estimators": Interval(int, 1),
        "max_samples": Interval(int, 2),
        "random_state": Interval(int),
        "min_z": Interval(float, 0, closed="neither"),
        "margin": Interval(float, 0, closed="neither"),
        "cooldown": Interval(int, 0),
    }

    def __init__(
        self,
        *,
        lags: int = 4,
        history: int = 512,
        refit_every: int = 512,
        n_estimators: int = 32,
        max_samples: int = 64,
        random_state: int = 0,
        min_z: float = 4.0,
        margin: float = 1.0,
        cooldown: int = 100,
    ) -> None:
        self.lags = lags
        self.history = history
        self.refit_every = refit_every
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.random_state = random_state
        self.min_z = min_z
        self.margin = margin
        self.cooldown = cooldown

    def get_tags(self) -> dict[str, Any]:
        return {**super().get_tags(), "cheap_params": {"refit_every": 4096}}

    def _fit(self, timestamps: FloatArray, values: FloatArray) -> None:
        self.values_ = SortedWindow(self.history)
        self.features_: deque[tuple[float, ...]] = deque(maxlen=self.history)
        self.calibrator_ = Calibrator(min_z=self.min_z, margin=self.margin, cooldown=self.cooldown)
        self.trees_: dict[str, Any] | None = None
        self.center_ = 0.0
        self.spread_ = 1.0
        self.since_refit_ = 0
        self._walk: tuple[list[int], list[int], list[int], list[int], list[float]] | None = None
        for t, v in zip(timestamps.tolist(), values.tolist(), strict=True):
            self.update(t, v)

    def _featurise(self, value: float) -> tuple[float, ...] | None:
        window = self.values_
        if len(window) < self.lags + 8:
            return None
        med = window.quantile(0.5)
        spread = max(window.quantile(0.75) - window.quantile(0.25), 1e-9 + 1e-6 * abs(med))
        recent = [window.order.ago(k) for k in range(self.lags, 0, -1)]
        feats = [(value - med) / spread]
        feats.extend((x - med) / spread for x in reversed(recent[1:]))
        feats.append((value - recent[-1]) / spread)
        return tuple(feats)

    def _refit(self) -> None:
        from sklearn.ensemble import IsolationForest

        x = np.array(self.features_, dtype=np.float64)
        forest = IsolationForest(
            n_estimators=self.n_estimators, max_samples=min(self.max_samples, len(x)), random_state=self.random_state
        ).fit(x)
        left, right, feature, threshold, leaf = [], [], [], [], []
        roots = []
        offset = 0
        for tree, feats in zip(forest.estimators_, forest.estimators_features_, strict=True):
            t = tree.tree_
            n = t.node_count
            depth = np.zeros(n)
            for i in range(n):  # parents come before children in sklearn trees
                for child in (t.children_left[i], t.children_right[i]):
                    if child >= 0:
                        depth[child] = depth[i] + 1
            is_leaf = t.children_left == -1
            roots.append(offset)
            left.append(np.where(is_leaf, -1, t.children_left + offset))
            right.append(np.where(is_leaf, -1, t.children_right + offset))
            feature.append(np.where(is_leaf, 0, np.asarray(feats)[np.maximum(t.feature, 0)]))
            threshold.append(t.threshold)
            leaf.append(depth + np.array([_path_length(float(k)) for k in t.n_node_samples]))
            offset += n
        self.trees_ = {
            "roots": np.array(roots, dtype=np.int32),
            "left": np.concatenate(left).astype(np.int32),
            "right": np.concatenate(right).astype(np.int32),
            "feature": np.concatenate(feature).astype(np.int16),
            "threshold": np.concatenate(threshold).astype(np.float64),
            "leaf": np.concatenate(leaf).astype(np.float64),
            "norm": _path_length(float(min(self.max_samples, len(x)))) * len(roots),
        }
        self._walk = None
        train = np.array([self._isolation(f) for f in self.features_])
        self.center_ = float(np.median(train))
        self.spread_ = max(1.4826 * float(np.median(np.abs(train - self.center_))), 1e-6)
        self.since_refit_ = 0

    def _isolation(self, feats: tuple[float, ...]) -> float:
        """Isolation-forest anomaly score in (0, 1]; about 0.5 for ordinary points."""
        trees = self.trees_
        assert trees is not None
        if self._walk is None:
            self._walk = (
                trees["roots"].tolist(),
                trees["left"].tolist(),
                trees["right"].tolist(),
                trees["feature"].tolist(),
                trees["threshold"].tolist() + trees["leaf"].tolist(),
            )
        roots, left, right, feature, thr_leaf = self._walk
        n_nodes = len(left)
        total = 0.0
        for root in roots:
            node = root
            while left[node] >= 0:
                node = left[node] if feats[feature[node]] <= thr_leaf[node] else right[node]
            total += thr_leaf[n_nodes + node]
        return float(2.0 ** (-total / trees["norm"]))

    def _update(self, timestamp: float, value: float) -> Score:
        feats = self._featurise(value)
        score = Score(0.0)
        if feats is not None and self.trees_ is not None:
            raw = max(self._isolation(feats) - self.center_, 0.0) / self.spread_
            score = Score(self.calibrator_(raw))
        else:
            self.calibrator_.skip()
        self.values_.push(value)
        if feats is not None:
            self.features_.append(feats)
            self.since_refit_ += 1
            if len(self.features_) >= 64 and (self.trees_ is None or self.since_refit_ >= self.refit_every):
                self._refit()
        return score

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_walk"] = None
        return state
