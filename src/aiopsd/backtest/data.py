"""Reading NAB-layout series (``timestamp,value`` CSV) and labelled windows (JSON)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aiopsd.detectors.anomaly.base import FloatArray
from aiopsd.errors import AiopsdError


@dataclass(frozen=True)
class SeriesFile:
    """One CSV series: where it came from, its path relative to the input root, and its data."""

    path: Path
    relative: Path
    timestamps: FloatArray
    values: FloatArray
    labels: list[str]


def _epoch_seconds(stamps: pd.Series) -> FloatArray:
    parsed = pd.to_datetime(stamps, utc=True, format="mixed")
    ns = parsed.astype("int64").to_numpy()
    return np.asarray(ns, dtype=np.float64) / 1e9


def parse_time(text: str) -> float:
    """Epoch seconds of one timestamp string (naive times are taken as UTC)."""
    return float(pd.Timestamp(text, tz="UTC").value) / 1e9


def read_series(path: Path, relative: Path | None = None) -> SeriesFile:
    """Read a ``timestamp,value`` CSV; unparsable values become NaN."""
    try:
        frame = pd.read_csv(path, dtype={"timestamp": str})
    except (OSError, ValueError) as exc:
        raise AiopsdError(f"{path}: cannot read CSV ({exc}); expected columns timestamp,value") from exc
    if "timestamp" not in frame.columns or "value" not in frame.columns:
        raise AiopsdError(f"{path}: expected columns timestamp,value, found {list(frame.columns)}")
    values = pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype=np.float64)
    labels = [str(s) for s in frame["timestamp"]]
    return SeriesFile(path, relative or Path(path.name), _epoch_seconds(frame["timestamp"]), values, labels)


def discover(inputs: list[Path]) -> list[tuple[Path, Path]]:
    """CSV files under the inputs (files or folders, recursive), with their output-relative paths."""
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        if item.is_dir():
            found.extend((p, p.relative_to(item)) for p in sorted(item.rglob("*.csv")))
        elif item.is_file():
            found.append((item, Path(item.name)))
        else:
            raise AiopsdError(f"{item}: no such file or folder")
    return found


def read_windows(path: Path) -> dict[str, list[tuple[float, float]]]:
    """NAB ``combined_windows.json``: ``{"<category>/<file>.csv": [[start, end], ...]}``."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AiopsdError(f"{path}: cannot read windows JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise AiopsdError(f"{path}: expected an object keyed by series path")
    return {str(key): [(parse_time(a), parse_time(b)) for a, b in spans] for key, spans in raw.items()}


def windows_for(windows: dict[str, list[tuple[float, float]]], series: SeriesFile) -> list[tuple[float, float]] | None:
    """The windows of a series: the longest key that is a path suffix of the series' file."""
    path = series.path.resolve().as_posix()
    best: str | None = None
    for key in windows:
        if (path == key or path.endswith("/" + key.lstrip("/"))) and (best is None or len(key) > len(best)):
            best = key
    return None if best is None else windows[best]
