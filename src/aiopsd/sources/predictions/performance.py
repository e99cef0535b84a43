"""Estimated performance of a prediction log's windows (CBPE or DLE) and, once labels arrive, its error.

Fitted on the labelled reference (:func:`~aiopsd.detectors.drift.estimate.fit_estimator`). A
window without labels gets an estimate; its drop below the reference beyond ``max_drop`` fails the
window (score ``drop / max_drop`` >= 1). A window of labelled rows (inline or joined late by
``prediction_id``) gets both the estimate and the realised metric on the same rows: their
difference is the estimation error. Segments are estimated with the same estimator, against the
reference metric of the same segment, once they have :data:`MIN_ESTIMATE_ROWS` rows.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from aiopsd.config import PredictionLogConfig
from aiopsd.detectors.drift.estimate import DEFAULT_MAX_DROP, Estimate, fit_estimator, is_drop, realised
from aiopsd.detectors.drift.segments import SegmentSet, segment_keys

MIN_ESTIMATE_ROWS = 100
"""Fewer rows than this (in a segment) give an estimate too noisy to judge against ``max_drop``."""


class PerformanceJudge:
    """The fitted estimator of one prediction log and the reference metric of each segment."""

    def __init__(self, cfg: PredictionLogConfig, reference: pd.DataFrame, segments: SegmentSet | None) -> None:
        assert cfg.estimate is not None and cfg.estimate_metric is not None
        self.cfg = cfg
        self.metric = cfg.estimate_metric
        self.score_column = cfg.estimate.score
        self.threshold = cfg.estimate.threshold
        self.max_drop = cfg.estimate.max_drop if cfg.estimate.max_drop is not None else DEFAULT_MAX_DROP[self.metric]
        if "label" not in reference.columns:
            raise ValueError("estimate needs a reference with a label column")
        if cfg.task == "classification" and self.score_column not in reference.columns:
            raise ValueError(f"estimate (CBPE) needs the score column {self.score_column!r} in the reference")
        self.estimator = fit_estimator(
            reference,
            label="label",
            task=cfg.task,
            metric=self.metric,
            score=self.score_column,
            features=None if cfg.task == "classification" else _numeric_features(reference, cfg),
            threshold=self.threshold,
        )
        self.segment_reference: dict[str, float] = {}
        for column, kept in (segments.kept if segments is not None else {}).items():
            keys = segment_keys(reference, column, kept)
            for key, part in reference.groupby(keys, dropna=True):
                if len(part) >= MIN_ESTIMATE_ROWS:
                    self.segment_reference[str(key)] = self._realised(part)

    def _realised(self, frame: pd.DataFrame) -> float:
        return realised(
            self.cfg.task, self.metric, frame, label="label", score=self.score_column, threshold=self.threshold
        )

    def estimate(self, frame: pd.DataFrame) -> Estimate:
        return self.estimator.estimate(frame)

    def segment_estimate(self, key: str, frame: pd.DataFrame) -> Estimate | None:
        """The estimate of one segment's rows against that segment's reference metric (None: too few rows)."""
        ref = self.segment_reference.get(key)
        if ref is None or not math.isfinite(ref) or len(frame) < MIN_ESTIMATE_ROWS:
            return None
        est = self.estimator.estimate(frame)
        return Estimate(est.metric, est.estimated, ref, est.rows)

    def score(self, est: Estimate) -> float:
        """>= 1 when the estimated drop is beyond ``max_drop``, else 0."""
        return est.drop / self.max_drop if is_drop(est, self.max_drop) else 0.0

    def details(self, est: Estimate) -> dict[str, Any]:
        return {
            "metric": est.metric,
            "method": self.estimator.method,
            "reference_value": _finite(est.reference),
            "estimated_value": _finite(est.estimated),
            "estimated_drop": _finite(est.drop),
            "max_drop": self.max_drop,
            "estimated_rows": est.rows,
        }

    def labelled(self, frame: pd.DataFrame) -> dict[str, float]:
        """Estimate and realised metric of labelled rows, and the estimation error (estimate - realised)."""
        est = self.estimator.estimate(frame).estimated
        real = self._realised(frame)
        return {"estimate_labelled": est, "realised": real, "estimation_error": est - real}


def _numeric_features(reference: pd.DataFrame, cfg: PredictionLogConfig) -> list[str]:
    skip = {"label", "prediction", *cfg.segment_by}
    return [c for c in reference.columns if c not in skip and pd.api.types.is_numeric_dtype(reference[c].dtype)]


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
