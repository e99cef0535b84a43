"""daemon/runner.py: one place for source health, poll metrics, the upsert and the commit."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from aiopsd.config import Settings
from aiopsd.daemon import runner as runner_module
from aiopsd.daemon.metrics import Metrics
from aiopsd.daemon.runner import SourceRunner, SourceSet
from aiopsd.errors import SourceError, StoreUnavailableError
from aiopsd.models import Finding, FindingKind, SourceKind
from aiopsd.sources.base import Source, SourceEnv, SourceSpec
from aiopsd.sources.registry import PLANS, source_specs
from aiopsd.store import StateStore
from aiopsd.testing import ScriptedSource

T = 1_700_000_000.0


def finding(fid: str = "f1", event: str = "opened") -> Finding:
    at = datetime.fromtimestamp(T, UTC)
    return Finding(
        id=fid, kind=FindingKind.ANOMALY, source="scripted", starts_at=at, last_seen=at, details={"event": event}
    )


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_findings_are_stored_then_committed_and_the_source_is_up(
    store: StateStore, scripted_source: ScriptedSource
) -> None:
    metrics = Metrics()
    scripted_source.then(finding(), lag=12.5)
    assert SourceRunner(store, metrics).run(scripted_source, T) == [finding()]
    assert [f.id for f in store.list_findings()] == ["f1"]
    assert scripted_source.committed == 1 and scripted_source.rolled_back == 0
    [health] = store.list_sources()
    assert health["name"] == "scripted" and health["kind"] == SourceKind.PROMETHEUS and health["up"]
    assert health["lag_seconds"] >= 12.5
    assert sample(metrics, "aiopsd_source_up", source="scripted") == 1
    assert sample(metrics, "aiopsd_source_poll_lag_seconds", source="scripted") == health["lag_seconds"]
    assert sample(metrics, "aiopsd_source_poll_duration_seconds_count", source="scripted") == 1
    assert sample(metrics, "aiopsd_findings_total", kind="anomaly") == 1


def test_only_opened_findings_are_counted(store: StateStore, scripted_source: ScriptedSource) -> None:
    metrics = Metrics()
    scripted_source.then(finding("a", "continued"), finding("b", "resolved"))
    assert len(SourceRunner(store, metrics).run(scripted_source, T)) == 2
    assert sample(metrics, "aiopsd_findings_total", kind="anomaly") == 0


def test_an_unreadable_source_is_down_and_yields_nothing(store: StateStore, scripted_source: ScriptedSource) -> None:
    metrics = Metrics()
    scripted_source.then(error=SourceError("Prometheus at http://p unreachable: ConnectError"))
    assert SourceRunner(store, metrics).run(scripted_source, T) == []
    [health] = store.list_sources()
    assert not health["up"] and health["error"] == "Prometheus at http://p unreachable: ConnectError"
    assert scripted_source.committed == 0 and scripted_source.rolled_back == 0
    assert sample(metrics, "aiopsd_source_up", source="scripted") == 0
    assert sample(metrics, "aiopsd_source_poll_duration_seconds_count", source="scripted") == 1


def test_a_failed_write_rolls_back_and_propagates(
    store: StateStore, scripted_source: ScriptedSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(items: Any) -> None:
        raise StoreUnavailableError("database is locked")

    monkeypatch.setattr(store, "upsert_findings", refuse)
    scripted_source.then(finding())
    with pytest.raises(StoreUnavailableError):
        SourceRunner(store, Metrics()).run(scripted_source, T)
    assert scripted_source.committed == 0 and scripted_source.rolled_back == 1
    assert store.list_sources() == [], "no health fact from a poll whose findings were not stored"


def test_a_failed_commit_rolls_back(store: StateStore) -> None:
    class CommitFails(ScriptedSource):
        def _commit(self) -> None:
            raise StoreUnavailableError("cursor write failed")

    source = CommitFails().then(finding())
    with pytest.raises(StoreUnavailableError):
        SourceRunner(store, Metrics()).run(source, T)
    assert source.rolled_back == 1


def test_a_bug_in_a_source_is_not_a_source_down_fact(store: StateStore, scripted_source: ScriptedSource) -> None:
    scripted_source.then(error=FloatingPointError("detector bug"))
    with pytest.raises(FloatingPointError):
        SourceRunner(store, Metrics()).run(scripted_source, T)
    assert store.list_sources() == []


def _spec(name: str, config: object, built: list[ScriptedSource], *, leader_only: bool = True) -> SourceSpec:
    def build(env: SourceEnv) -> Source:
        source = ScriptedSource(name=name, leader_only=leader_only).then(finding(name))
        built.append(source)
        return source

    return SourceSpec(SourceKind.PROMETHEUS, name, config, build)


def test_a_reload_keeps_unchanged_sources_rebuilds_changed_ones_and_closes_removed_ones(store: StateStore) -> None:
    metrics = Metrics()
    built: list[ScriptedSource] = []
    sources = SourceSet(
        [_spec("a", 1, built), _spec("b", 1, built), _spec("c", 1, built)],
        SourceEnv(store=store, metrics=metrics),
        SourceRunner(store, metrics),
    )
    a, b, c = built
    stopped, started = sources.apply([_spec("a", 1, built), _spec("b", 2, built), _spec("d", 1, built)])
    assert stopped == [(SourceKind.PROMETHEUS, "b"), (SourceKind.PROMETHEUS, "c")]
    assert started == [(SourceKind.PROMETHEUS, "b"), (SourceKind.PROMETHEUS, "d")]
    assert sources[(SourceKind.PROMETHEUS, "a")] is a, "an unchanged source keeps running as it is"
    assert sources[(SourceKind.PROMETHEUS, "b")] is not b and b.closed and c.closed and not a.closed
    assert sorted(s.name for s in sources.of(SourceKind.PROMETHEUS)) == ["a", "b", "d"]
    assert sources.of(SourceKind.PREDICTION_LOG) == []


def test_a_leader_only_source_is_polled_only_by_the_leader(store: StateStore) -> None:
    metrics = Metrics()
    built: list[ScriptedSource] = []
    sources = SourceSet(
        [_spec("lead", 1, built), _spec("any", 1, built, leader_only=False)],
        SourceEnv(store=store, metrics=metrics),
        SourceRunner(store, metrics),
    )
    lead, anywhere = built
    assert sources.poll((SourceKind.PROMETHEUS, "lead"), leader=False) == []
    assert len(sources.poll((SourceKind.PROMETHEUS, "any"), leader=False)) == 1
    assert lead.polled == [] and len(anywhere.polled) == 1
    assert sources.poll((SourceKind.PROMETHEUS, "gone"), leader=True) == [], "a removed source polls nothing"
    sources.rebuild_leader_only()
    assert sources[(SourceKind.PROMETHEUS, "lead")] is not lead
    assert sources[(SourceKind.PROMETHEUS, "any")] is anywhere


def test_every_polled_source_kind_has_a_registry_entry() -> None:
    assert set(PLANS) == {k for k in SourceKind if k.polled}


def test_config_names_one_source_per_watch_and_prediction_log() -> None:
    settings = Settings(
        watches=[{"name": "api", "query": "up"}], prediction_logs=[{"model": "churn", "path": "/nonexistent/*.jsonl"}]
    )
    assert [s.key for s in source_specs(settings)] == [
        (SourceKind.PROMETHEUS, "api"),
        (SourceKind.PREDICTION_LOG, "predictions:churn"),
    ]
    again = source_specs(settings)
    assert source_specs(settings) == again, "specs compare by (kind, name, config)"


def test_poll_duration_and_lag_cover_storing_the_findings(
    store: StateStore, scripted_source: ScriptedSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poll whose store write takes 5 s reports 5 s more lag and a poll of at least 5 s (not just its read)."""
    clock = [1000.0]
    monkeypatch.setattr(runner_module, "time", SimpleNamespace(monotonic=lambda: clock[0], time=lambda: T))
    upsert = store.upsert_findings

    def slow_upsert(findings: Any) -> None:
        clock[0] += 5.0
        upsert(findings)

    monkeypatch.setattr(store, "upsert_findings", slow_upsert)
    metrics = Metrics()
    scripted_source.then(finding(), lag=2.0)
    SourceRunner(store, metrics).run(scripted_source, T)
    assert sample(metrics, "aiopsd_source_poll_lag_seconds", source="scripted") == 7.0
    assert store.list_sources()[0]["lag_seconds"] == 7.0
    assert sample(metrics, "aiopsd_source_poll_duration_seconds_sum", source="scripted") == 5.0
