"""A payload field the store cannot hold is a 422 naming the field at intake, never a 503 for the batch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aiopsd.config import Settings
from aiopsd.daemon.http.api import create_app
from aiopsd.daemon.http.auth import Credentials
from aiopsd.daemon.metrics import Metrics
from aiopsd.daemon.runtime import Runtime
from aiopsd.store import StateStore
from tests.support import alert, payload


@pytest.fixture
def client(tmp_path: Path) -> Any:
    settings = Settings(
        state_url=f"sqlite:///{tmp_path / 'state.db'}", state_dir=tmp_path / "state", rules_dir=tmp_path
    )
    rt = Runtime(settings=settings, rules=[], store=StateStore(settings.state_url), metrics=Metrics())
    rt.ready.set()
    with TestClient(create_app(rt, Credentials(None, None, None))) as c:
        yield c, rt
    rt.store.close()


@pytest.mark.parametrize(
    ("mutate", "field", "why"),
    [
        (lambda a: a["labels"].update(host="web\x001"), "alerts.1.labels.host", "NUL"),
        (lambda a: a["labels"].update({"ho\x00st": "x"}), "alerts.1.labels.ho\x00st", "NUL"),
        (lambda a: a["annotations"].update(summary="a\x00b"), "alerts.1.annotations.summary", "NUL"),
        (lambda a: a.update(generatorURL="http://x/\x00"), "alerts.1.generatorURL", "NUL"),
        (lambda a: a["labels"].update(host="\udcff"), "alerts.1.labels.host", "lone surrogate"),
        (lambda a: a["labels"].update(alertname="A" * 257), "alerts.1.labels", "longer than 256"),
        (lambda a: a.update(startsAt="9999-12-31T23:59:59-01:00"), "alerts.1.startsAt", "out of range"),
        (lambda a: a.update(startsAt="0001-01-01T00:00:00+01:00"), "alerts.1.startsAt", "out of range"),
        (lambda a: a.update(endsAt="9999-12-31T23:30:00-05:00"), "alerts.1.endsAt", "out of range"),
        (lambda a: a.update(endsAt="tomorrow"), "alerts.1.endsAt", "RFC 3339"),
        (lambda a: a.update(startsAt="2026-01-01T00:00:00Z" + " " * 64), "alerts.1.startsAt", "at most 64"),
        (lambda a: a.update(fingerprint="f" * 129), "alerts.1.fingerprint", "at most 128"),
    ],
)
def test_unstorable_field_is_422_naming_it_and_nothing_is_stored(
    client: Any, mutate: Any, field: str, why: str
) -> None:
    c, rt = client
    bad = alert("Bad", fingerprint="bad")
    mutate(bad)
    # As bytes: json.dumps escapes a lone surrogate as \\udcff, the way a hostile sender would.
    r = c.post(
        "/api/v1/alerts",
        content=json.dumps(payload(alert("Good", fingerprint="good"), bad)),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert field in r.json()["error"] and why in r.json()["error"]
    assert rt.store.list_alerts() == []
    # The next delivery, without the bad field, is accepted: nothing else was poisoned.
    assert c.post("/api/v1/alerts", json=payload(alert("Good", fingerprint="good"))).status_code == 200


def test_non_utf8_body_is_400(client: Any) -> None:
    c, _ = client
    body = b'{"version": "4", "status": "firing", "alerts": [{"labels": {"alertname": "\xff\xfe"}}]}'
    r = c.post("/api/v1/alerts", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]


def test_alertmanagers_zero_end_time_and_offsets_within_range_are_accepted(client: Any) -> None:
    c, rt = client
    ok = alert("Edge", fingerprint="edge", starts_at="9999-12-31T22:00:00-01:00")
    assert c.post("/api/v1/alerts", json=payload(ok)).status_code == 200
    assert [a["alertname"] for a in rt.store.list_alerts()] == ["Edge"]
