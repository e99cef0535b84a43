"""Rows -> windows: a window closes after ``rows`` rows or ``seconds`` past its first row."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from aiopsd.sources.predictions.rows import Row

WindowKind = Literal["predictions", "labels"]


@dataclass(frozen=True)
class WindowSpec:
    """A window closes after ``rows`` rows or when a row is ``seconds`` past its first row (either first)."""

    rows: int | None = 500
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.rows is None and self.seconds is None:
            raise ValueError("a window needs rows or seconds")
        if (self.rows is not None and self.rows < 1) or (self.seconds is not None and self.seconds <= 0):
            raise ValueError("window rows must be >= 1 and seconds > 0")


@dataclass(frozen=True)
class PredictionWindow:
    """A complete window of feature, ``prediction``, ``label``, ``timestamp``, ``model``, ``version``
    and ``prediction_id`` columns. ``kind="predictions"``: every prediction (``label`` only where it was
    inline); ``kind="labels"``: predictions whose label is known (inline or joined later) - the data for
    performance drift and for retraining."""

    kind: WindowKind
    start: float
    end: float
    frame: pd.DataFrame
    models: tuple[str, ...]
    versions: tuple[str, ...]

    @property
    def rows(self) -> int:
        return len(self.frame)


def add_row(spec: WindowSpec, buf: list[Row], row: Row, kind: WindowKind) -> list[PredictionWindow]:
    """Append ``row`` to the window being filled in ``buf``; the windows this closes (0, 1 or 2)."""
    out: list[PredictionWindow] = []
    if buf and spec.seconds is not None and row.timestamp is not None:
        first = buf[0].timestamp
        if first is not None and row.timestamp - first >= spec.seconds:
            out.append(to_window(kind, buf))
            buf.clear()
    buf.append(row)
    if spec.rows is not None and len(buf) >= spec.rows:
        out.append(to_window(kind, buf))
        buf.clear()
    return out


def to_window(kind: WindowKind, rows: Sequence[Row]) -> PredictionWindow:
    frame = pd.DataFrame.from_records([r.record() for r in rows])
    ts = [r.timestamp for r in rows if r.timestamp is not None]
    models = tuple(sorted({str(r.model) for r in rows if r.model is not None}))
    versions = tuple(sorted({str(r.version) for r in rows if r.version is not None}))
    return PredictionWindow(
        kind=kind,
        start=min(ts) if ts else math.nan,
        end=max(ts) if ts else math.nan,
        frame=frame,
        models=models,
        versions=versions,
    )
