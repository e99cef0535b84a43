"""Silences read from a real Alertmanager (API v2): created, matched, expired, and Alertmanager going away."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from aiopsd.demo.stack import start_alertmanager, stopping
from aiopsd.engine.silences import silencing
from aiopsd.sources.silences import SilenceCache


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def create_silence(url: str, matchers: list[dict[str, Any]], hours: float = 1) -> str:
    now = datetime.now(UTC)
    r = httpx.post(
        f"{url}/api/v2/silences",
        timeout=10,
        json={
            "matchers": matchers,
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(hours=hours)).isoformat(),
            "createdBy": "test",
            "comment": "planned work",
        },
    )
    assert r.status_code == 200, r.text
    return str(r.json()["silenceID"])


def test_a_real_silence_matches_the_right_labels_until_it_is_expired(tmp_path: Path) -> None:
    am = start_alertmanager(tmp_path / "am", webhook_url="http://127.0.0.1:9/unused")
    with stopping(am):
        clock = Clock()
        cache = SilenceCache(am.url, timeout=5, ttl=30, clock=clock)
        assert cache.view().up and cache.view().silences == ()
        sid = create_silence(
            am.url,
            [
                {"name": "service", "value": "api", "isRegex": False, "isEqual": True},
                {"name": "instance", "value": "web-(1|2)", "isRegex": True, "isEqual": True},
                {"name": "env", "value": "staging", "isRegex": False, "isEqual": False},
            ],
        )
        # Cached: the new silence is not seen until the ttl has passed.
        assert cache.view().silences == ()
        clock.t += 30
        view = cache.view()
        assert view.up and [s.id for s in view.silences] == [sid]
        now = datetime.now(UTC)
        hit = silencing(view.silences, {"service": "api", "instance": "web-2", "env": "prod"}, now)
        assert hit is not None and hit.id == sid and hit.comment == "planned work" and hit.created_by == "test"
        for labels in (
            {"service": "api", "instance": "web-3", "env": "prod"},  # regex is anchored, 3 not in
            {"service": "api", "instance": "web-10", "env": "prod"},  # anchored: not a prefix match
            {"service": "api", "instance": "web-1", "env": "staging"},  # env!=staging fails
            {"service": "web", "instance": "web-1"},
        ):
            assert silencing(view.silences, labels, now) is None, labels

        assert httpx.delete(f"{am.url}/api/v2/silence/{sid}", timeout=10).status_code == 200
        clock.t += 30
        view = cache.view()
        assert view.up
        assert (
            silencing(view.silences, {"service": "api", "instance": "web-2", "env": "prod"}, datetime.now(UTC)) is None
        )
        assert [s.state for s in view.silences if s.id == sid] == ["expired"]

        sid2 = create_silence(am.url, [{"name": "service", "value": "db", "isRegex": False, "isEqual": True}])
        clock.t += 30
        assert [s.id for s in cache.active(datetime.now(UTC))] == [sid2]
    # Alertmanager gone: the view is down with the reason, and still knows what it read last.
    clock.t += 30
    down = cache.view()
    assert not down.up and "Alertmanager silences unreadable" in down.error
    assert sid2 in [s.id for s in down.silences]
