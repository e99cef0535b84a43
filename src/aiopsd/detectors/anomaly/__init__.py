"""Anomaly detectors for univariate series and the registry that names them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiopsd.detectors.anomaly.adaptive import AdaptiveDetector
from aiopsd.detectors.anomaly.base import AnomalyDetector, Score, Scores, stream_scores
from aiopsd.detectors.anomaly.mad import MADDetector

DETECTORS: dict[str, Callable[..., AnomalyDetector]] = {
    "mad": MADDetector,
    "adaptive": AdaptiveDetector,
    "default": AdaptiveDetector,
}


def make_detector(name: str, **params: Any) -> AnomalyDetector:
    """Build a fresh, unfitted detector by its registry name."""
    try:
        factory = DETECTORS[name]
    except KeyError:
        known = ", ".join(sorted(DETECTORS))
        raise ValueError(f"unknown detector {name!r}; known detectors: {known}") from None
    return factory(**params)


__all__ = ["DETECTORS", "AnomalyDetector", "MADDetector", "Score", "Scores", "make_detector",
           "stream_scores"]
