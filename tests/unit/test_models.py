"""models.merge_sighting: the one merge rule of a finding seen again, in the store and in ``rules test``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiopsd.engine.replay import Simulation
from aiopsd.models import Finding, FindingKind, FindingStatus, merge_sighting
from aiopsd.store import StateStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def seen(after: float, **update: object) -> Finding:
    at = T0 + timedelta(seconds=after)
    base = Finding(
        id="x",
        kind=FindingKind.ANOMALY,
        source="latency",
        labels={"host": "a"},
        score=1.0,
        starts_at=T0,
        last_seen=at,
        summary=f"seen at {after:g}s",
        details={f"d{after:g}": 1},
        sightings=(at.timestamp(),),
    )
    return base.model_copy(update=update)


def test_the_store_and_the_replay_keep_the_same_finding_through_sightings_and_a_resolve(store: StateStore) -> None:
    timeline = [
        seen(0),
        seen(60, labels={"host": "b"}, score=3.0),
        seen(30, score=0.5),
        seen(120, status=FindingStatus.RESOLVED, score=0.1),
        seen(180),
    ]
    sim = Simulation([])
    for f in timeline:
        store.upsert_findings([f])
        sim.observe(f)
    stored = store.get_finding("x")
    assert stored == sim.findings["x"]
    assert stored is not None and stored.status == FindingStatus.RESOLVED and stored.resolution == "recovered"
    assert stored.labels == {"host": "a"} and stored.score == 3.0 and stored.last_seen == T0 + timedelta(seconds=120)
    assert stored.sightings == tuple(sorted(f.sightings[0] for f in timeline[:4]))
    assert set(stored.details) == {"d0", "d60", "d30", "d120"} and stored.summary == "seen at 120s"


def test_a_resolved_incident_stays_resolved() -> None:
    done = seen(0, status=FindingStatus.RESOLVED, resolution="no_data")
    assert merge_sighting(done, seen(10)) is None
    again = merge_sighting(done, seen(20, status=FindingStatus.RESOLVED))
    assert again is not None and again.resolution == "recovered" and again.last_seen == T0 + timedelta(seconds=20)
