"""Stream CSV series through a detector causally, write the scores, score them the NAB way."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aiopsd.backtest.data import SeriesFile, discover, read_series, windows_for
from aiopsd.backtest.nab import (
    PROFILES,
    LabelledFile,
    NabResult,
    label_file,
    optimise_threshold,
    score_corpus,
)
from aiopsd.detectors.anomaly import make_detector
from aiopsd.detectors.anomaly.base import Scores, stream_scores


@dataclass(frozen=True)
class SeriesResult:
    """One series after the backtest: its data, the detector's scores and its NAB labels if any."""

    series: SeriesFile
    scores: Scores
    windows: list[tuple[float, float]] | None
    labels: LabelledFile | None


def run_series(detector: str, series: SeriesFile) -> Scores:
    """Fresh detector, fit on nothing (as the daemon starts a new series), then one update per point."""
    det = make_detector(detector).fit(np.empty(0), np.empty(0))
    return stream_scores(det, series.timestamps, series.values)


def write_scores(path: Path, series: SeriesFile, scores: Scores) -> None:
    """``timestamp,value,anomaly_score`` CSV, timestamps as they were read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"timestamp": series.labels, "value": series.values, "anomaly_score": scores.anomaly_score}).to_csv(
        path, index=False
    )


def backtest(
    detector: str,
    inputs: list[Path],
    output: Path,
    windows: dict[str, list[tuple[float, float]]] | None = None,
    progress: Callable[[list[tuple[Path, Path]]], Iterable[tuple[Path, Path]]] | None = None,
) -> list[SeriesResult]:
    """Run ``detector`` over every CSV under ``inputs``; write ``output/<relative path>``."""
    make_detector(detector)  # unknown names fail before any work
    files = discover(inputs)
    results: list[SeriesResult] = []
    for path, relative in progress(files) if progress else files:
        series = read_series(path, relative)
        scores = run_series(detector, series)
        write_scores(output / relative, series, scores)
        spans = windows_for(windows, series) if windows is not None else None
        labels = label_file(relative.as_posix(), series.timestamps, spans) if spans is not None else None
        results.append(SeriesResult(series, scores, spans, labels))
    return results


@dataclass(frozen=True)
class ProfileScore:
    """NAB score of one profile at the detector's own threshold (1.0) and at the best one."""

    own: NabResult
    optimised: NabResult


def nab_table(results: list[SeriesResult]) -> list[ProfileScore]:
    """NAB scores of the labelled series, per profile."""
    labelled = [(r.labels, r.scores.anomaly_score) for r in results if r.labels is not None]
    return [ProfileScore(score_corpus(labelled, p, 1.0), optimise_threshold(labelled, p)) for p in PROFILES]
