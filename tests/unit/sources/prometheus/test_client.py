"""Long reads are split below Prometheus' limits and merged back without losing or repeating a point."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aiopsd.sources.prometheus.client import MAX_POINTS, chunks, read_range
from aiopsd.testing import ScriptedRange


@settings(deadline=None, max_examples=50)
@given(
    points=st.integers(1, 30_000),
    series=st.integers(0, 200_000),
    budget=st.integers(1000, 5_000_000),
)
def test_chunks_cover_the_grid_once_within_both_limits(points: int, series: int, budget: int) -> None:
    step = 15.0
    start = 1_700_000_000.0
    plan = chunks(start, start + (points - 1) * step, step, series=series, max_samples=budget)
    grid = [t for s, e in plan for t in np.arange(s, e + step / 2, step).tolist()]
    assert grid == [start + k * step for k in range(points)]
    for s, e in plan:
        n = round((e - s) / step) + 1
        assert n <= MAX_POINTS
        assert n == 1 or n * max(series, 1) <= budget


def test_a_chunked_read_returns_what_one_read_would() -> None:
    ts = np.arange(0.0, 3600.0, 15.0)
    data: dict[tuple[tuple[str, str], ...], tuple[Any, Any]] = {
        (("i", str(i)),): (ts, np.sin(ts + i)) for i in range(50)
    }
    client = ScriptedRange(data)
    whole = client.query_range("w", "q", 0.0, 3585.0, 15.0)
    client.reads.clear()
    parts = read_range(client, "w", "q", 0.0, 3585.0, 15.0, series=50, max_samples=1000)
    assert len(client.reads) == 12  # 240 points x 50 series in reads of 1000 samples: 20 points each
    assert [s.labels for s in parts] == [s.labels for s in whole]
    assert np.array_equal(parts.timestamps, whole.timestamps) and np.array_equal(parts.values, whole.values)
