"""The source runner: poll a source, store its findings, commit its cursor, keep its health.

Every polled source runs through :meth:`SourceRunner.run`, so source health (the store's
source rows and ``aiopsd_source_up``), the poll metrics (duration, lag), the upsert of the
findings and the commit of the cursor live here once:

* ``poll`` raising ``SourceError``: the source is down (health row, gauge 0), no findings;
* the findings are upserted, then ``Poll.commit()`` advances the cursor; if either fails,
  ``Poll.rollback()`` and the error propagates (the next poll reads the same data again);
* then the source is up, with the poll's lag, and each opened finding is counted.

``aiopsd_source_poll_duration_seconds`` times the whole poll (read, detect, store), and the
lag is the age of the newest data the poll judged *when its findings are stored* (the
source's ``Poll.lag`` at its ``now`` plus the poll's own time), so an overloaded poll shows.

:class:`SourceSet` holds the running sources and applies a reload by diffing their specs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from aiopsd.daemon.metrics import Metrics
from aiopsd.detectors.anomaly.incidents import Event
from aiopsd.errors import SourceError
from aiopsd.models import Finding, SourceKind
from aiopsd.sources.base import Source, SourceEnv, SourceSpec, by_key
from aiopsd.store import StateStore

logger = logging.getLogger(__name__)


class SourceRunner:
    def __init__(self, store: StateStore, metrics: Metrics) -> None:
        self.store = store
        self.metrics = metrics

    def run(self, source: Source, now: float | None = None) -> list[Finding]:
        """One poll of ``source`` at ``now`` (epoch seconds, default the clock); the findings stored."""
        now = time.time() if now is None else now
        name, m = source.name, self.metrics
        at = datetime.fromtimestamp(now, UTC)
        started = time.monotonic()
        try:
            poll = source.poll(now)
        except SourceError as exc:
            logger.warning("%s source %s: %s", source.kind, name, exc)
            self.store.set_source(name, source.kind, up=False, now=at, error=str(exc))
            m.source_up.labels(name).set(0)
            m.poll_duration.labels(name).observe(time.monotonic() - started)
            return []
        try:
            self.store.upsert_findings(poll.findings)
            poll.commit()
        except Exception:
            poll.rollback()
            m.poll_duration.labels(name).observe(time.monotonic() - started)
            raise
        # The whole poll (read, detect, store), and the data's age once its findings are stored:
        # a poll that falls behind shows on both, not only its HTTP call.
        elapsed = time.monotonic() - started
        lag = None if poll.lag is None else poll.lag + elapsed
        self.store.set_source(name, source.kind, up=True, now=at, lag=lag)
        m.source_up.labels(name).set(1)
        if lag is not None:
            m.poll_lag.labels(name).set(lag)
        m.poll_duration.labels(name).observe(time.monotonic() - started)
        for f in poll.findings:
            if f.details.get("event") == Event.OPENED:
                m.findings.labels(str(f.kind)).inc()
        return list(poll.findings)


SourceKey = tuple[SourceKind, str]


class SourceSet:
    """The running polled sources by ``(kind, name)``, each built from its spec (see the registry).

    ``apply`` is the reload: a source whose spec (kind, name, config) is unchanged keeps running
    with what it holds in memory; a changed one is rebuilt (from its stored cursor), an added one
    built, a removed one closed.
    """

    def __init__(self, specs: Sequence[SourceSpec], env: SourceEnv, runner: SourceRunner) -> None:
        self.env = env
        self.runner = runner
        self.specs: dict[SourceKey, SourceSpec] = dict(by_key(specs))
        self.running: dict[SourceKey, Source] = {k: spec.build(env) for k, spec in self.specs.items()}

    def __len__(self) -> int:
        return len(self.running)

    def __getitem__(self, key: SourceKey) -> Source:
        return self.running[key]

    def __iter__(self) -> Iterator[SourceKey]:
        return iter(list(self.running))

    def of(self, kind: SourceKind) -> list[Source]:
        return [s for (k, _), s in self.running.items() if k == kind]

    def poll(self, key: SourceKey, *, leader: bool) -> list[Finding]:
        """One poll of a source still configured; a leader-only source only while this replica leads."""
        source = self.running.get(key)
        if source is None or (source.leader_only and not leader):
            return []
        return self.runner.run(source)

    def apply(self, specs: Sequence[SourceSpec]) -> tuple[list[SourceKey], list[SourceKey]]:
        """Run ``specs`` from now on; returns the keys stopped and the keys started (a changed one is both)."""
        new = by_key(specs)
        stopped = [k for k, spec in self.specs.items() if new.get(k) != spec]
        for key in stopped:
            self.running.pop(key).close()
            del self.specs[key]
        started = [k for k in new if k not in self.specs]
        for key in started:
            self.specs[key] = new[key]
            self.running[key] = new[key].build(self.env)
        return stopped, started

    def rebuild_leader_only(self) -> None:
        """Forget what this replica remembers of its leader-only sources: rebuilt, they read the store again."""
        for key, source in list(self.running.items()):
            if source.leader_only:
                self.running[key] = self.specs[key].build(self.env)
