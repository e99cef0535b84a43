"""The webhook against a real SQLite store: durable before 2xx, idempotent, clear 4xx, 503 when down."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from aiopsd.config import Settings
from aiopsd.daemon.http.api import create_app
from aiopsd.daemon.http.auth import Credentials
from aiopsd.daemon.metrics import Metrics
from aiopsd.daemon.runtime import Runtime
from aiopsd.demo.stack import free_port
from aiopsd.store import StateStore
from tests.support import alert, payload


def make_client(tmp_path: Path, creds: Credentials | None = None) -> tuple[TestClient, StateStore, Runtime]:
    settings = Settings(state_url=f"sqlite:///{tmp_path / 'state.db'}", state_dir=tmp_path)
    store = StateStore(settings.state_url)
    rt = Runtime(settings=settings, rules=[], store=store, metrics=Metrics())
    rt.ready.set()
    app = create_app(rt, creds or Credentials(None, None, None))
    return TestClient(app), store, rt


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, StateStore, Runtime]]:
    c, store, rt = make_client(tmp_path)
    yield c, store, rt
    store.close()


def test_alert_is_stored_and_redelivery_is_a_no_op(
    client: tuple[TestClient, StateStore, Runtime], tmp_path: Path
) -> None:
    c, store, _ = client
    body = payload(alert(fingerprint="abc", instance="web-1"), alert("Other", fingerprint="def"))
    r = c.post("/api/v1/alerts", json=body)
    assert r.status_code == 200 and r.json() == {"accepted": 2, "duplicates": 0}
    # Durable: a second store on the same file sees them.
    other = StateStore(store.url)
    assert other.counts()["alerts"] == 2
    r = c.post("/api/v1/alerts", json=body)
    assert r.json() == {"accepted": 0, "duplicates": 2}
    assert len(other.active_findings()) == 2
    other.close()


def test_resolved_delivery_resolves_the_finding(client: tuple[TestClient, StateStore, Runtime]) -> None:
    c, store, _ = client
    c.post("/api/v1/alerts", json=payload(alert(fingerprint="abc")))
    assert len(store.active_findings()) == 1
    c.post("/api/v1/alerts", json=payload(alert(fingerprint="abc", status="resolved"), status="resolved"))
    assert store.active_findings() == []
    assert store.counts()["alerts"] == 2


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b'{"version": "3", "status": "firing", "alerts": []}', 422, "version"),
        (b'{"version": "4", "status": "firing", "alerts": [{"status": "firing"}]}', 422, "alerts.0"),
        (
            b'{"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": {"a": "b"},'
            b' "startsAt": "yesterday", "fingerprint": "x"}]}',
            422,
            "RFC 3339",
        ),
    ],
)
def test_bad_payloads_get_4xx_with_a_reason(
    client: tuple[TestClient, StateStore, Runtime], body: bytes, code: int, words: str
) -> None:
    c, store, _ = client
    r = c.post("/api/v1/alerts", content=body, headers={"content-type": "application/json"})
    assert r.status_code == code
    assert words in r.json()["error"]
    assert store.counts()["alerts"] == 0


def test_oversized_body_is_413(client: tuple[TestClient, StateStore, Runtime]) -> None:
    c, _, _ = client
    big = payload(*[alert(fingerprint=f"f{i}", pad="x" * 2000) for i in range(600)])
    assert c.post("/api/v1/alerts", json=big).status_code == 413


def test_store_failure_is_503_so_alertmanager_retries(client: tuple[TestClient, StateStore, Runtime]) -> None:
    c, store, _ = client
    store.engine.dispose()
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE alerts")
    r = c.post("/api/v1/alerts", json=payload(alert()))
    assert r.status_code == 503
    assert "retry" in r.json()["error"]


def test_draining_daemon_answers_503(client: tuple[TestClient, StateStore, Runtime]) -> None:
    c, store, rt = client
    rt.draining.set()
    assert c.post("/api/v1/alerts", json=payload(alert())).status_code == 503
    assert store.counts()["alerts"] == 0


def test_auth_bearer_and_basic(tmp_path: Path) -> None:
    c, store, _ = make_client(tmp_path, Credentials("s3cret", "am", "pw"))
    body = payload(alert())
    assert c.post("/api/v1/alerts", json=body).status_code == 401
    assert c.post("/api/v1/alerts", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.post("/api/v1/alerts", json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    basic = base64.b64encode(b"am:pw").decode()
    r = c.post("/api/v1/alerts", json=payload(alert(fingerprint="zz")), headers={"Authorization": f"Basic {basic}"})
    assert r.status_code == 200
    assert store.counts()["alerts"] == 2
    store.close()


def test_read_api_and_health(client: tuple[TestClient, StateStore, Runtime]) -> None:
    c, _, _ = client
    c.post("/api/v1/alerts", json=payload(alert(fingerprint="abc")))
    [f] = c.get("/api/v1/findings").json()
    assert f["kind"] == "alert" and f["status"] == "firing"
    assert c.get(f"/api/v1/findings/{f['id']}").json()["finding"]["id"] == f["id"]
    assert c.get("/api/v1/findings/nope").status_code == 404
    assert c.get("/api/v1/actions/12345").status_code == 404
    assert c.get("/-/healthy").status_code == 200
    assert c.get("/-/ready").status_code == 200
    status = c.get("/api/v1/status").json()
    assert status["counts"]["alerts"] == 1
    assert 'aiopsd_alerts_received_total{result="accepted"} 1.0' in c.get("/metrics").text


def test_concurrent_deliveries_over_real_http_each_commit_before_their_2xx(tmp_path: Path) -> None:
    """16 senders at once through uvicorn: each 2xx'd alert is readable by a new connection at once,
    redeliveries are duplicates, and a bad payload among them (422) takes nothing else down."""
    c, store, _ = make_client(tmp_path)
    server = uvicorn.Server(
        uvicorn.Config(c.app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started
    url = f"http://127.0.0.1:{server.config.port}/api/v1/alerts"
    reader = StateStore(store.url, create=False)

    def body(i: int) -> dict[str, Any]:
        if i == 13:
            return payload(alert(fingerprint="bad", starts_at="not a time"))
        return payload(alert(fingerprint=f"fp{i % 40}", instance=f"web-{i % 40}"))

    async def sender(k: int, http: httpx.AsyncClient) -> list[tuple[int, int, dict[str, Any]]]:
        out = []
        for i in range(k, 64, 16):
            r = await http.post(url, json=body(i))
            seen = {a["fingerprint"] for a in reader.list_alerts(limit=1000)}
            if r.status_code == 200:
                assert f"fp{i % 40}" in seen, f"request {i} got 200 before its alert was committed"
            out.append((i, r.status_code, r.json()))
        return out

    async def burst() -> list[tuple[int, int, dict[str, Any]]]:
        async with httpx.AsyncClient(timeout=30) as http:
            return [x for xs in await asyncio.gather(*(sender(k, http) for k in range(16))) for x in xs]

    try:
        results = asyncio.run(burst())
    finally:
        server.should_exit = True
        thread.join(30)
        reader.close()
    codes = {i: code for i, code, _ in results}
    assert codes.pop(13) == 422
    assert set(codes.values()) == {200}
    answers = [a for i, _, a in results if i != 13]
    # 63 deliveries of 40 fingerprints: each stored once, the other 23 are duplicates.
    assert sum(a["accepted"] for a in answers) == 40 and sum(a["duplicates"] for a in answers) == 23
    assert store.counts()["alerts"] == 40 and len(store.active_findings()) == 40
    assert store.verify_audit().ok
    store.close()
