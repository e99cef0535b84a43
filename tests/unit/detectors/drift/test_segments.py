"""Segment drift: a shift confined to one segment is named, with the budget shared."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aiopsd.detectors.drift.segments import profile_segments, test_segments


def _frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "country": rng.choice(["de", "fr", "it", "es"], n),
            "spend": rng.gamma(2.0, 10.0, n),
            "plan": rng.choice(["a", "b"], n),
        }
    )


def test_shift_in_one_segment_names_the_segment() -> None:
    rng = np.random.default_rng(0)
    prof = profile_segments(_frame(rng, 4000), "country", categorical=["plan"])
    assert set(prof.segments) == {"de", "fr", "it", "es"}
    win = _frame(rng, 400)
    it = win["country"] == "it"
    win.loc[it, "spend"] = win.loc[it, "spend"] + 15.0
    res = test_segments(prof, win)
    assert res.drift and res.drifted_segments == ["it"]
    assert res.segments["it"].drifted == ("spend",)


def test_no_shift_rarely_flags_any_segment() -> None:
    rng = np.random.default_rng(1)
    prof = profile_segments(_frame(rng, 4000), "country", categorical=["plan"])
    flagged = sum(test_segments(prof, _frame(rng, 400)).drift for _ in range(40))
    assert flagged <= 2


def test_unknown_segment_column_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="segment_by column 'region'"):
        profile_segments(_frame(np.random.default_rng(2), 100), "region")


def test_numeric_segment_values_match_whether_logged_as_int_float_or_text() -> None:
    from aiopsd.detectors.drift.segments import profile_segment_set, segment_parts

    rng = np.random.default_rng(7)
    ref = pd.DataFrame({"store": [1] * 1500 + [2] * 1000 + [3] * 500, "spend": rng.normal(size=3000)})
    prof = profile_segment_set(ref, ["store"], max_segments=2)
    assert prof.kept["store"] == {"1", "2"} and set(prof.segments) == {"store=1", "store=2", "store=(other)"}
    win = pd.DataFrame({"store": [1.0] * 40 + ["2"] * 40 + [3] * 40, "spend": rng.normal(size=120)})
    assert {k: len(p) for k, p in segment_parts(prof, win).items()} == {
        "store=1": 40,
        "store=2": 40,
        "store=(other)": 40,
    }
