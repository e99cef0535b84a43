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
