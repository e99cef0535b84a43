"""The one shape of a polled source: ``poll(now) -> Poll``, run by the daemon's source runner.

A source reads its data, judges it and returns a :class:`Poll`: the findings, how far behind
the newest data is, and what to do once the findings are stored (``commit``: advance the cursor
or watermark) or could not be (``rollback``: forget what the poll advanced in memory, so the next
poll reads the same data again). A source that cannot read its data raises
:class:`~aiopsd.errors.SourceError`: that is a *source health* fact (the source is down), never
a finding.

Sources import nothing from the store: what they read and write there comes in through
:class:`SourceStore`, which the daemon's ``StateStore`` implements.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from prometheus_client import Counter, Gauge

from aiopsd.config import Settings
from aiopsd.models import Finding, FindingKind, SourceKind
from aiopsd.sources.prometheus.shards import ShardOwner


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Poll:
    """What one poll of a source found, and how to settle it once the findings are stored or not."""

    findings: Sequence[Finding] = ()
    lag: float | None = None
    """Age in seconds of the newest data seen (None when the poll saw none)."""
    commit: Callable[[], None] = field(default=_nothing, compare=False)
    """Advance the cursor past this poll's data; called only once ``findings`` are stored."""
    rollback: Callable[[], None] = field(default=_nothing, compare=False)
    """Storing ``findings`` or ``commit`` failed: the next poll reads the same data again."""


class Source(Protocol):
    """A polled source of findings (a Prometheus watch, a prediction log, ...)."""

    @property
    def name(self) -> str:
        """The source's health row, metric label and ``Finding.source``."""

    @property
    def kind(self) -> SourceKind: ...

    @property
    def interval(self) -> float:
        """Seconds between polls."""

    @property
    def leader_only(self) -> bool:
        """Polled only by the replica that holds the leader lease (one cursor, one episode)."""

    def poll(self, now: float) -> Poll:
        """Read what is new at ``now`` (epoch seconds); raises ``SourceError`` when the data cannot be read."""

    def close(self) -> None:
        """The source is removed (reload): drop what it exports."""


class SourceStore(Protocol):
    """The part of the state store a source reads and writes: cursors, its open findings, and audit
    entries for what it decides itself (a model lifecycle's promotions and rollbacks)."""

    def get_cursor(self, name: str) -> dict[str, Any] | None: ...

    def put_cursor(self, name: str, value: dict[str, Any]) -> None: ...

    def active_findings(self, kind: FindingKind | None = None, source: str | None = None) -> list[Finding]: ...

    def audit(self, kind: str, now: datetime, event: Mapping[str, Any]) -> None: ...


class ScoreSink(Protocol):
    """Exported latest score and band per watched series (the daemon's ``ScoreExport``)."""

    def set(self, watch: str, labels: dict[str, str], values: tuple[float, float, float, float]) -> None: ...

    def drop(self, watch: str, labels: dict[str, str]) -> None: ...

    def forget(self, watch: str) -> None: ...

    def record_point(self, series: str, t: float, score: float) -> None:
        """One scored point of a series (its ``series_key``), for score_below verification."""


ScorePoint = tuple[str, dict[str, str], float, tuple[float, float, float, float]]
"""One scored point to push: series key, series labels, timestamp, (score, yhat, yhat_lower, yhat_upper)."""


class ScorePush(Protocol):
    """Where watches with ``export: {scores: remote_write}`` send every scored point (the daemon's ``RemoteWriter``)."""

    def push(self, watch: str, points: Sequence[ScorePoint]) -> None:
        """Queue the points of a committed poll; never blocks on the network."""

    def forget(self, watch: str, key: str) -> None:
        """The series is gone from the watch."""


class PerformanceSink(Protocol):
    """Exported estimated/realised model performance per (model, metric) (the daemon's ``PerformanceExport``)."""

    def set(self, model: str, metric: str, values: dict[str, float]) -> None:
        """Update some of ``estimate``, ``realised`` and ``estimation_error``."""

    def forget(self, model: str) -> None: ...


class SourceMetrics(Protocol):
    """The metrics sources export themselves (the runner exports health, lag, duration and findings)."""

    @property
    def scores(self) -> ScoreSink: ...

    @property
    def watch_series(self) -> Gauge: ...

    @property
    def series_refused(self) -> Gauge: ...

    @property
    def bad_rows(self) -> Counter: ...

    @property
    def performance(self) -> PerformanceSink: ...


@dataclass(frozen=True)
class SourceEnv:
    """What building a source may use."""

    store: SourceStore
    metrics: SourceMetrics
    push: ScorePush | None = None
    """Remote write of scores (None: no watch may use ``export: {scores: remote_write}``)."""
    shard_owner: ShardOwner | None = None
    """The lease keeper when watches are sharded across replicas (PostgreSQL, ``sharding.enabled``)."""


@dataclass(frozen=True)
class SourceSpec:
    """One configured source: ``(kind, name, config)`` identifies it across reloads, ``build`` makes it.

    A reload keeps a running source whose spec is equal (same kind, name and config) and
    rebuilds the others; ``build`` is not compared.
    """

    kind: SourceKind
    name: str
    config: object
    build: Callable[[SourceEnv], Source] = field(compare=False)

    @property
    def key(self) -> tuple[SourceKind, str]:
        return self.kind, self.name


SourcePlan = Callable[[Settings], list[SourceSpec]]
"""A source kind's registry entry: the settings -> the specs of that kind's configured sources."""


def by_key(specs: Sequence[SourceSpec]) -> Mapping[tuple[SourceKind, str], SourceSpec]:
    return {s.key: s for s in specs}
