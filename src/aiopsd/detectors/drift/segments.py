"""Segment drift: the whole window and each value of a ``segment_by`` column, one shared budget.

A shift confined to one segment (one country, one device type) is diluted in
the whole window. Each segment value with enough reference rows gets its own
profile; a window is tested as a whole and per segment, and the window's
``alpha`` is split equally between the whole-window test and the segments
(Bonferroni), so a no-drift window still raises a false alarm with probability
at most ``alpha`` in total. Segments with fewer than ``min_rows`` reference or
window rows are not tested (their rows still count in the whole window).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from aiopsd.detectors.drift.profile import ReferenceProfile, profile_reference
from aiopsd.detectors.drift.window import DEFAULT_ALPHA, DriftResult, test_window

MIN_SEGMENT_ROWS = 30


@dataclass(frozen=True)
class SegmentedProfile:
    column: str
    whole: ReferenceProfile
    segments: dict[str, ReferenceProfile]
    min_rows: int = MIN_SEGMENT_ROWS


@dataclass(frozen=True)
class SegmentedResult:
    """The whole-window result and one per tested segment; ``drifted_segments`` names the ones that drifted."""

    whole: DriftResult
    segments: dict[str, DriftResult]

    @property
    def drift(self) -> bool:
        return self.whole.drift or any(r.drift for r in self.segments.values())

    @property
    def drifted_segments(self) -> list[str]:
        return [k for k, r in self.segments.items() if r.drift]


def profile_segments(
    reference: pd.DataFrame,
    segment_by: str,
    *,
    categorical: Iterable[str] = (),
    min_rows: int = MIN_SEGMENT_ROWS,
    **kwargs: object,
) -> SegmentedProfile:
    """Profile the whole reference and each ``segment_by`` value with >= ``min_rows`` rows.

    The segment column itself is left out of the per-segment profiles (it is constant there).
    """
    if segment_by not in reference.columns:
        raise ValueError(f"segment_by column {segment_by!r} is not in the reference")
    cat = list(categorical)
    whole = profile_reference(reference, categorical=[*cat, segment_by], **kwargs)  # type: ignore[arg-type]
    cols = [c for c in reference.columns if c != segment_by]
    segs: dict[str, ReferenceProfile] = {}
    keys = reference[segment_by].astype(str).where(reference[segment_by].notna())
    for value, part in reference.groupby(keys, dropna=True):
        if len(part) >= min_rows:
            segs[str(value)] = profile_reference(part[cols], categorical=cat, **kwargs)  # type: ignore[arg-type]
    return SegmentedProfile(segment_by, whole, segs, min_rows)


def test_segments(profile: SegmentedProfile, window: pd.DataFrame, *, alpha: float = DEFAULT_ALPHA) -> SegmentedResult:
    """Test the window as a whole and per segment, ``alpha`` split over all the tests that run."""
    keys = (
        window[profile.column].astype(str).where(window[profile.column].notna())
        if profile.column in window.columns
        else pd.Series(index=window.index, dtype=object)
    )
    parts = {v: window[keys == v] for v in profile.segments}
    tested = {v: p for v, p in parts.items() if len(p) >= profile.min_rows}
    share = alpha / (1 + len(tested))
    whole = test_window(profile.whole, window, alpha=share)
    segs = {
        v: test_window(profile.segments[v], p.drop(columns=[profile.column]), alpha=share) for v, p in tested.items()
    }
    return SegmentedResult(whole, segs)


test_segments.__test__ = False  # type: ignore[attr-defined]


OTHER = "(other)"
"""The pooled segment of a column's values beyond ``max_segments`` (or too rare to profile alone)."""


@dataclass(frozen=True)
class SegmentSet:
    """Segments of several ``segment_by`` columns: ``segments`` maps ``"column=value"`` to the column and
    its profile; ``kept`` the values of each column that are their own segment (the rest pool as
    :data:`OTHER`, so a high-cardinality column gives at most ``max_segments + 1`` segments)."""

    segments: dict[str, tuple[str, ReferenceProfile]]
    kept: dict[str, frozenset[str]]
    min_rows: int = MIN_SEGMENT_ROWS


def _as_text(values: pd.Series) -> pd.Series:
    """Segment values as text, numbers the same whether read as 3, 3.0 or "3" (JSONL, CSV, reference)."""

    def one(v: object) -> str:
        if isinstance(v, bool | np.bool_) or not isinstance(v, int | float | np.integer | np.floating):
            return str(v)
        return str(int(v)) if float(v).is_integer() else repr(float(v))

    return values.map(one)


def segment_keys(frame: pd.DataFrame, column: str, kept: frozenset[str]) -> pd.Series:
    """Each row's segment key ``"column=value"`` (values not in ``kept`` pool as :data:`OTHER`; missing: NaN)."""
    if column not in frame.columns:
        return pd.Series(index=frame.index, dtype=object)
    raw = frame[column]
    values = _as_text(raw).where(raw.notna())
    pooled = values.where(values.isin(kept) | values.isna(), OTHER)
    return (column + "=" + pooled).where(raw.notna())


def profile_segment_set(
    reference: pd.DataFrame,
    columns: Iterable[str],
    *,
    max_segments: int = 20,
    min_rows: int = MIN_SEGMENT_ROWS,
    **kwargs: object,
) -> SegmentSet:
    """Per column, its ``max_segments`` most frequent values with >= ``min_rows`` reference rows are
    segments; the other values pool into one :data:`OTHER` segment (profiled when it has the rows)."""
    segs: dict[str, tuple[str, ReferenceProfile]] = {}
    kept: dict[str, frozenset[str]] = {}
    for column in columns:
        if column not in reference.columns:
            raise ValueError(f"segment_by column {column!r} is not in the reference")
        counts = _as_text(reference[column].dropna()).value_counts()
        kept[column] = frozenset(str(v) for v in counts[counts >= min_rows].index[:max_segments])
        keys = segment_keys(reference, column, kept[column])
        rest = reference.drop(columns=[column])
        for key, part in rest.groupby(keys, dropna=True, sort=True):
            if len(part) >= min_rows:
                segs[str(key)] = (column, profile_reference(part, **kwargs))  # type: ignore[arg-type]
    return SegmentSet(segs, kept, min_rows)


def segment_parts(profile: SegmentSet, window: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The window's rows of each profiled segment with >= ``min_rows`` rows (the segment column dropped)."""
    out: dict[str, pd.DataFrame] = {}
    for column, kept in profile.kept.items():
        keys = segment_keys(window, column, kept)
        rest = window.drop(columns=[column]) if column in window.columns else window
        for key, part in rest.groupby(keys, dropna=True, sort=True):
            if str(key) in profile.segments and len(part) >= profile.min_rows:
                out[str(key)] = part
    return out


def test_segment_set(
    whole: ReferenceProfile, profile: SegmentSet, window: pd.DataFrame, *, alpha: float = DEFAULT_ALPHA
) -> SegmentedResult:
    """Test the window as a whole and per segment of every column, ``alpha`` split over all the tests run."""
    parts = segment_parts(profile, window)
    share = alpha / (1 + len(parts))
    return SegmentedResult(
        test_window(whole, window, alpha=share),
        {k: test_window(profile.segments[k][1], p, alpha=share) for k, p in parts.items()},
    )


test_segment_set.__test__ = False  # type: ignore[attr-defined]
