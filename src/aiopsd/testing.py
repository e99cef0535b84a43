"""Fakes for tests (of aiopsd and of code built on it): scripted sources, no network, no clock.

* :class:`ScriptedSource` is a :class:`~aiopsd.sources.base.Source` whose polls are scripted:
  each ``poll`` returns the next scripted :class:`~aiopsd.sources.base.Poll` (or raises the
  scripted exception) and records what the runner did with it (committed, rolled back).
* :class:`ScriptedRange` answers Prometheus range queries from arrays, for a
  :class:`~aiopsd.sources.prometheus.watch.PrometheusWatch` under test.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aiopsd.models import Finding, SourceKind
from aiopsd.sources.base import Poll
from aiopsd.sources.prometheus.matrix import Matrix, from_arrays


@dataclass(frozen=True)
class Scripted:
    """One scripted poll: its findings and lag, or the exception ``poll`` raises instead."""

    findings: Sequence[Finding] = ()
    lag: float | None = None
    error: BaseException | None = None


@dataclass
class ScriptedSource:
    """A source that returns scripted polls, oldest first; an empty script polls nothing new."""

    name: str = "scripted"
    kind: SourceKind = SourceKind.PROMETHEUS
    interval: float = 1.0
    leader_only: bool = True
    script: deque[Scripted] = field(default_factory=deque)
    polled: list[float] = field(default_factory=list)
    committed: int = 0
    rolled_back: int = 0
    closed: bool = False

    def then(self, *findings: Finding, lag: float | None = None, error: BaseException | None = None) -> ScriptedSource:
        """Script one more poll; returns self, so scripts chain."""
        self.script.append(Scripted(findings, lag, error))
        return self

    def poll(self, now: float) -> Poll:
        self.polled.append(now)
        step = self.script.popleft() if self.script else Scripted()
        if step.error is not None:
            raise step.error
        return Poll(findings=tuple(step.findings), lag=step.lag, commit=self._commit, rollback=self._rollback)

    def close(self) -> None:
        self.closed = True

    def _commit(self) -> None:
        self.committed += 1

    def _rollback(self) -> None:
        self.rolled_back += 1


class ScriptedRange:
    """Answers ``query_range`` from arrays keyed by label tuples: Prometheus where a test scripts the data."""

    def __init__(self, data: dict[tuple[tuple[str, str], ...], tuple[Any, Any]] | None = None) -> None:
        self.data = data if data is not None else {}
        self.reads: list[tuple[float, float]] = []  # (start, end) of every query, oldest first

    def query_range(
        self, name: str, query: str, start: float, end: float, step: float, *, identity: bool = False
    ) -> Matrix:
        self.reads.append((start, end))
        out = []
        for labels, (stamps, values) in self.data.items():
            ts, vs = np.asarray(stamps, dtype=np.float64), np.asarray(values, dtype=np.float64)
            m = (ts >= start) & (ts <= end)
            if m.any():
                out.append((dict(labels), ts[m], vs[m]))
        return from_arrays(out)
