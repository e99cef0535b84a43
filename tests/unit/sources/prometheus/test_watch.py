"""PrometheusWatch bookkeeping with a scripted source (the real Prometheus path is in tests/integration)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aiopsd.config import PrometheusConfig, WatchConfig
from aiopsd.daemon.metrics import Metrics
from aiopsd.models import FindingStatus
from aiopsd.sources.prometheus.watch import PrometheusWatch
from aiopsd.store import StateStore
from aiopsd.testing import ScriptedRange
from tests.support import run_poll


def make(tmp_path: Path) -> tuple[PrometheusWatch, ScriptedRange, StateStore]:
    store = StateStore(f"sqlite:///{tmp_path / 's.db'}")
    src = ScriptedRange()
    w = PrometheusWatch(
        WatchConfig(name="w", query="q", step=1, interval=1, lookback=600, detector="mad", resolve_after=3),
        PrometheusConfig(url="http://unused", overlap=5, stale_after=30),
        src,
        store,
        Metrics(),
    )
    return w, src, store


def test_incident_opens_once_continues_and_resolves(tmp_path: Path) -> None:
    w, src, store = make(tmp_path)
    rng = np.random.default_rng(1)
    ts = np.arange(0.0, 400.0)
    vs = 10 + rng.normal(0, 0.5, ts.size)
    vs[350:356] = 50.0
    key = (("host", "a"),)
    src.data[key] = (ts[:300], vs[:300])
    assert run_poll(w, 300.0) == []
    src.data[key] = (ts, vs)
    found = run_poll(w, 400.0)
    firing = [f for f in found if f.status == FindingStatus.FIRING]
    resolved = [f for f in found if f.status == FindingStatus.RESOLVED]
    assert {f.id for f in firing} == {resolved[0].id}, "one incident id from open to resolve"
    assert len(firing) == 6 and len(store.list_findings()) == 1
    assert store.list_findings()[0].status == FindingStatus.RESOLVED
    assert store.list_findings()[0].starts_at.timestamp() == 350.0


def test_restart_reopens_the_same_incident_not_a_new_one(tmp_path: Path) -> None:
    w, src, store = make(tmp_path)
    ts = np.arange(0.0, 400.0)
    vs = 10 + np.random.default_rng(2).normal(0, 0.5, ts.size)
    vs[390:] = 50.0
    src.data[(("host", "a"),)] = (ts[:380], vs[:380])
    run_poll(w, 380.0)
    src.data[(("host", "a"),)] = (ts[:395], vs[:395])
    [first, *_] = run_poll(w, 395.0)
    w2 = PrometheusWatch(w.watch, w.prometheus, src, store, Metrics())  # a restarted daemon
    src.data[(("host", "a"),)] = (ts, vs)
    later = run_poll(w2, 400.0)
    assert later and {f.id for f in later} == {first.id}
    assert len(store.list_findings()) == 1


def test_vanished_series_is_forgotten_and_its_incident_closed_as_no_data(tmp_path: Path) -> None:
    w, src, store = make(tmp_path)
    ts = np.arange(0.0, 300.0)
    vs = 10 + np.random.default_rng(3).normal(0, 0.5, ts.size)
    src.data[(("pod", "x"),)] = (ts[:250], vs[:250])
    run_poll(w, 250.0)
    vs[250:] = 80.0
    src.data[(("pod", "x"),)] = (ts, vs)
    run_poll(w, 300.0)
    assert store.active_findings()
    del src.data[(("pod", "x"),)]
    run_poll(w, 320.0)
    assert w.series, "kept while absent for less than stale_after"
    run_poll(w, 340.0)
    assert not w.series
    [f] = store.list_findings()
    assert f.status == FindingStatus.RESOLVED and "no data" in f.summary
    assert f.resolution == "no_data", "missing data is not a recovery (no on_resolved)"


def test_polls_read_only_the_points_after_what_was_scored(tmp_path: Path) -> None:
    """Warm-up: a one-point probe, then the lookback; afterwards each poll asks only for points it has not seen."""
    w, src, _ = make(tmp_path)
    ts = np.arange(0.0, 1000.0)
    for host in ("a", "b"):
        src.data[(("host", host),)] = (ts, 10 + np.sin(ts))
    run_poll(w, 700.0)
    assert src.reads == [(700.0, 700.0), (100.0, 700.0)]
    src.reads.clear()
    run_poll(w, 702.0)
    run_poll(w, 710.0)
    assert src.reads == [(701.0, 702.0), (703.0, 710.0)]  # not 5 s of overlap re-read each time
    del src.data[(("host", "b"),)]
    src.reads.clear()
    run_poll(w, 712.0)
    run_poll(w, 720.0)
    # b is absent but not stale: reads start after b's newest point (710) while that is within the overlap
    assert src.reads == [(711.0, 712.0), (711.0, 720.0)]
    run_poll(w, 730.0)
    assert src.reads[-1] == (715.0, 730.0)  # b's newest point is older: never before watermark - overlap


def test_a_warm_up_longer_than_the_samples_budget_is_read_in_chunks(tmp_path: Path) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 's.db'}")
    src = ScriptedRange()
    ts = np.arange(0.0, 4000.0)
    for i in range(10):
        src.data[(("i", str(i)),)] = (ts, 10 + np.sin(ts + i))
    w = PrometheusWatch(
        WatchConfig(name="w", query="q", step=1, interval=1, lookback=3600, detector="mad"),
        PrometheusConfig(url="http://unused", max_samples_per_query=10_000),
        src,
        store,
        Metrics(),
    )
    run_poll(w, 3900.0)
    assert src.reads[0] == (3900.0, 3900.0)
    reads = src.reads[1:]
    assert len(reads) == 4 and reads[0][0] == 300.0 and reads[-1][1] == 3900.0  # 3601 points x 10 series
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(reads))
    assert len(w.series) == 10
    assert all(s.last_ts == 3900.0 for s in w.series.values())


def test_without_metrics_export_only_an_open_incident_is_on_metrics(tmp_path: Path) -> None:
    """export.scores remote_write: a series is on /metrics while its incident is open, not before or after."""
    store = StateStore(f"sqlite:///{tmp_path / 's.db'}")
    src = ScriptedRange()
    metrics = Metrics()
    pushed: list[tuple[str, int]] = []

    class Push:
        def push(self, watch: str, points: Sequence[Any]) -> None:
            pushed.append((watch, len(points)))

        def forget(self, watch: str, key: str) -> None: ...

    w = PrometheusWatch(
        WatchConfig(
            name="w",
            query="q",
            step=1,
            interval=1,
            lookback=600,
            detector="mad",
            resolve_after=3,
            export={"scores": "remote_write"},
        ),
        PrometheusConfig(url="http://unused", overlap=5, stale_after=30),
        src,
        store,
        metrics,
        Push(),
    )
    rng = np.random.default_rng(1)
    ts = np.arange(0.0, 400.0)
    vs = 10 + rng.normal(0, 0.5, ts.size)
    vs[350:356] = 50.0
    src.data[(("host", "a"),)] = (ts, vs)
    src.data[(("host", "b"),)] = (ts, 10 + rng.normal(0, 0.5, ts.size))

    def on_metrics() -> set[str]:
        return {
            s.labels["host"] for m in metrics.scores.collect() for s in m.samples if m.name == "aiopsd_anomaly_score"
        }

    run_poll(w, 300.0)
    run_poll(w, 340.0)
    assert on_metrics() == set()
    run_poll(w, 352.0)
    assert on_metrics() == {"a"}
    run_poll(w, 400.0)
    assert on_metrics() == set()
    assert pushed == [("w", 0), ("w", 80), ("w", 24), ("w", 94)]  # every scored point of both series, once
