"""One drift episode per (test, segment): the whole window, each segment, the estimated performance.

Each episode opens on its first failing window, continues while windows fail and resolves on a
passing one (:class:`~aiopsd.detectors.anomaly.incidents.IncidentTracker`). The whole-window drift
episode keeps the key ``("", "")`` and its historical finding id; the others are told apart by the
finding labels ``test`` and ``segment``, so a restarted watch picks its open episodes up again.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from aiopsd.detectors.anomaly.incidents import Event, IncidentTracker
from aiopsd.models import Finding, FindingKind, FindingStatus, stable_id
from aiopsd.sources.base import SourceStore

Key = tuple[str, str]
"""(test, segment): ``("", "")`` the whole-window drift, ``("", "country=DE")`` a segment's drift,
``("estimated_performance", "")`` the estimate of the whole window (or of one segment)."""

WHOLE: Key = ("", "")
ESTIMATED = "estimated_performance"


def key_labels(key: Key) -> dict[str, str]:
    test, segment = key
    return {**({"test": test} if test else {}), **({"segment": segment} if segment else {})}


class Episodes:
    """The open episodes of one prediction-log source."""

    def __init__(self, source: str, store: SourceStore) -> None:
        self.source = source
        self.trackers: dict[Key, IncidentTracker] = {}
        for f in store.active_findings(kind=FindingKind.DRIFT, source=source):
            t = self.tracker((f.labels.get("test", ""), f.labels.get("segment", "")))
            t.open_since = t.last_start = f.starts_at.timestamp()

    def tracker(self, key: Key) -> IncidentTracker:
        return self.trackers.setdefault(key, IncidentTracker(resolve_after=1))

    def snapshot(self) -> dict[Key, IncidentTracker]:
        return copy.deepcopy(self.trackers)

    def restore(self, kept: dict[Key, IncidentTracker]) -> None:
        self.trackers = kept

    def observe(self, key: Key, t: float, score: float) -> tuple[Event, str, float] | None:
        """Feed one window's score (>= 1 fails); the event, the episode's finding id and its start."""
        tracker = self.tracker(key)
        event = tracker.observe(t, score)
        if event is None:
            return None
        start = tracker.last_start
        assert start is not None
        fid = stable_id("drift", self.source, start) if key == WHOLE else stable_id("drift", self.source, *key, start)
        return event, fid, start


def episode_finding(
    *,
    fid: str,
    event: Event,
    source: str,
    labels: dict[str, str],
    score: float,
    start: float,
    end: float,
    summary: str,
    details: dict[str, Any],
) -> Finding:
    """The finding of one episode's event (resolved: score 0, no sighting)."""
    resolved = event == Event.RESOLVED
    return Finding(
        id=fid,
        kind=FindingKind.DRIFT,
        source=source,
        labels=labels,
        score=0.0 if resolved else score,
        status=FindingStatus.RESOLVED if resolved else FindingStatus.FIRING,
        starts_at=datetime.fromtimestamp(start, UTC),
        last_seen=datetime.fromtimestamp(end, UTC),
        summary=summary,
        details={"event": str(event), **details},
        sightings=() if resolved else (end,),
    )
