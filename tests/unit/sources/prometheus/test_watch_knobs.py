"""A watch's noise knobs reach the watcher: an excursion on the unwanted side opens no incident."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aiopsd.config import PrometheusConfig, WatchConfig
from aiopsd.daemon.metrics import Metrics
from aiopsd.sources.prometheus.watch import PrometheusWatch
from aiopsd.store import StateStore
from aiopsd.testing import ScriptedRange
from tests.support import run_poll


@pytest.mark.parametrize(("direction", "incidents"), [("both", 2), ("up", 1), ("down", 1)])
def test_direction_decides_which_excursions_open_an_incident(tmp_path: Path, direction: str, incidents: int) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 's.db'}")
    src = ScriptedRange()
    watch = WatchConfig(
        name="w", query="q", step=1, interval=1, lookback=600, detector="mad", resolve_after=3, direction=direction
    )
    w = PrometheusWatch(watch, PrometheusConfig(url="http://unused", overlap=5, stale_after=30), src, store, Metrics())
    ts = np.arange(0.0, 500.0)
    vs = 10 + np.random.default_rng(1).normal(0, 0.5, ts.size)
    vs[350:353] = 50.0  # up
    vs[420:423] = -30.0  # down
    key = (("host", "a"),)
    src.data[key] = (ts[:300], vs[:300])
    run_poll(w, 300.0)
    src.data[key] = (ts, vs)
    run_poll(w, 500.0)
    starts = sorted(f.starts_at.timestamp() for f in store.list_findings())
    assert len(starts) == incidents
    if direction == "up":
        assert starts == [350.0]
    if direction == "down":
        assert starts == [420.0]
