"""The chart ring keeps the last rows in order, with exact whole-second times across re-bases."""

from __future__ import annotations

import math

from aiopsd.sources.prometheus.series import PLOT_POINTS, Recent


def test_rows_are_the_last_ones_in_order_and_times_survive_rebasing() -> None:
    r = Recent()
    t0 = 1_700_000_000.0
    times = [t0 + 15 * k for k in range(PLOT_POINTS + 50)] + [t0 + 40 * 86400 + k for k in range(30)]
    for i, t in enumerate(times):
        r.append((t, 0.5 + i, math.nan, 2.0, 1.0, 3.0))
    rows = r.rows()
    assert len(rows) == PLOT_POINTS
    assert [row[0] for row in rows] == times[-PLOT_POINTS:]
    assert rows[-1][1] == 0.5 + len(times) - 1
    assert math.isnan(rows[-1][2]) and rows[-1][3:] == [2.0, 1.0, 3.0]


def test_a_short_ring_returns_only_what_was_appended() -> None:
    r = Recent()
    assert r.rows() == []
    r.append((10.25, 1.0, 0.1, 1.0, 0.0, 2.0))
    assert r.rows() == [[10.25, 1.0, 0.10000000149011612, 1.0, 0.0, 2.0]]  # float32 score, as charted
