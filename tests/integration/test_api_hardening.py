"""The HTTP surface under bad input and a broken store: 4xx with a reason, 503, never a 500.

The app is built in-process (``create_app``) on a real SQLite store, as the daemon builds it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiopsd.config import Settings, WebhookAuth
from aiopsd.daemon.http.api import create_app
from aiopsd.daemon.http.auth import Credentials, load_credentials
from aiopsd.daemon.metrics import Metrics
from aiopsd.daemon.runtime import Runtime
from aiopsd.engine.history import engine_state
from aiopsd.engine.rules import Rule
from aiopsd.models import RunStatus
from aiopsd.store import StateStore
from tests.support import alert, payload, tool_env

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
APPROVER_TOKEN = "approver-token"
APPROVE = {"Authorization": f"Bearer {APPROVER_TOKEN}"}


def build(
    tmp_path: Path, *, auth: bool = True, max_body: int = 64 * 1024, approvals: bool = True
) -> tuple[TestClient, Runtime]:
    settings = Settings(
        state_url=f"sqlite:///{tmp_path / 'state' / 'state.db'}",
        state_dir=tmp_path / "state",
        rules_dir=tmp_path,
        webhook={"max_body_bytes": max_body},
    )
    store = StateStore(settings.state_url)
    rt = Runtime(settings=settings, rules=[], store=store, metrics=Metrics())
    rt.ready.set()
    creds = load_credentials(WebhookAuth(bearer_token=TOKEN)) if auth else Credentials(None, None, None)
    approver = load_credentials(WebhookAuth(bearer_token=APPROVER_TOKEN)) if approvals else None
    return TestClient(create_app(rt, creds, approver)), rt


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, Runtime]]:
    client, rt = build(tmp_path)
    yield client, rt
    rt.store.close()


def post(client: TestClient, body: Any, headers: dict[str, str] | None = None) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(
        "/api/v1/alerts",
        content=data,
        headers={"Content-Type": "application/json", **(AUTH if headers is None else headers)},
    )


def test_webhook_accepts_durably_and_answers_duplicates(api: tuple[TestClient, Runtime]) -> None:
    client, rt = api
    r = post(client, payload(alert(fingerprint="a"), alert(fingerprint="b")))
    assert r.status_code == 200 and r.json() == {"accepted": 2, "duplicates": 0}
    r = post(client, payload(alert(fingerprint="a")))
    assert r.json() == {"accepted": 0, "duplicates": 1}
    assert rt.store.counts()["alerts"] == 2


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": "Basic Zm9vOmJhcg=="}, 401),
        ({"Authorization": "Bearer"}, 401),
        (AUTH, 200),
    ],
)
def test_webhook_auth(api: tuple[TestClient, Runtime], headers: dict[str, str], code: int) -> None:
    client, rt = api
    assert post(client, payload(alert()), headers).status_code == code
    assert rt.store.counts()["alerts"] == (1 if code == 200 else 0)


def test_basic_auth_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("hunter2\n")
    creds = load_credentials(WebhookAuth(basic_username="am", basic_password_file=tmp_path / "pw"))
    assert creds.check("Basic YW06aHVudGVyMg==")  # am:hunter2
    assert not creds.check("Basic YW06d3Jvbmc=")  # am:wrong


def test_body_over_the_limit_is_413_declared_or_streamed(tmp_path: Path) -> None:
    client, rt = build(tmp_path, max_body=2048)
    big = payload(*(alert(fingerprint=f"f{i}") for i in range(40)))
    assert post(client, big).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        data = json.dumps(big).encode()
        for i in range(0, len(data), 512):
            yield data[i : i + 512]

    r = client.post("/api/v1/alerts", content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 413 and "larger than 2048" in r.json()["error"]
    assert rt.store.counts()["alerts"] == 0
    rt.store.close()


@pytest.mark.parametrize(
    ("body", "code", "says"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"\xff\xfe", 400, "not valid JSON"),
        ({"version": "3", "status": "firing", "alerts": []}, 422, "version"),
        ({"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": {}}]}, 422, "alerts.0"),
        ({"version": "4", "status": "firing", "alerts": [{**alert(), "startsAt": "yesterday"}]}, 422, "RFC 3339"),
        ([1, 2, 3], 422, "Alertmanager v4"),
    ],
)
def test_bad_payloads_get_4xx_with_the_reason(api: tuple[TestClient, Runtime], body: Any, code: int, says: str) -> None:
    client, rt = api
    r = post(client, body)
    assert r.status_code == code and says in r.json()["error"]
    assert rt.store.counts()["alerts"] == 0


def test_store_gone_gives_503_never_2xx(tmp_path: Path) -> None:
    client, rt = build(tmp_path)
    rt.store.close()
    shutil.rmtree(tmp_path / "state")  # the state directory vanished under the daemon
    r = post(client, payload(alert()))
    assert r.status_code == 503 and "retry" in r.json()["error"]
    assert client.get("/api/v1/decisions").status_code == 503
    assert client.get("/-/ready").status_code == 503


def test_unexpected_error_is_503_not_500(api: tuple[TestClient, Runtime], monkeypatch: pytest.MonkeyPatch) -> None:
    client, rt = api

    def broken(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(rt.store, "list_runs", broken)
    r = TestClient(client.app, raise_server_exceptions=False).get("/api/v1/actions")
    assert r.status_code == 503 and "RuntimeError" in r.json()["error"]


def _awaiting_run(rt: Runtime) -> int:
    from datetime import UTC, datetime

    from aiopsd.engine import evaluate

    rule = Rule.model_validate(
        {
            "name": "manual",
            "match": {"kind": "alert"},
            "action": {"notify": {"message": "x"}},
            "guards": {"require_approval": True},
        }
    )
    from aiopsd.sources.alertmanager import IncomingAlert

    rt.store.accept_alerts(
        [IncomingAlert("fp", "firing", "2026-01-01T00:00:00Z", None, {"alertname": "A"}, {}, None, 0.0)],
        received_at=0.0,
        receiver=None,
        group_key=None,
    )
    now = datetime.now(UTC)
    ds = evaluate(rt.store.active_findings(), [rule], engine_state(rt.store, [rule], now, sources_down={}), now)
    rt.store.record_decisions(ds, {"manual": rule})
    [run] = rt.store.list_runs()
    assert run.status == RunStatus.AWAITING_APPROVAL
    return run.id


def test_approve_endpoint_needs_the_approval_token_not_the_webhook_token(api: tuple[TestClient, Runtime]) -> None:
    client, rt = api
    run_id = _awaiting_run(rt)
    assert client.post(f"/api/v1/actions/{run_id}/approve").status_code == 401
    assert client.post(f"/api/v1/actions/{run_id}/approve", headers={"Authorization": "Bearer no"}).status_code == 401
    # Whoever holds Alertmanager's credential can send alerts, but not release the runs they cause.
    assert client.post(f"/api/v1/actions/{run_id}/approve", headers=AUTH).status_code == 401
    assert rt.store.get_run(run_id).status == RunStatus.AWAITING_APPROVAL  # type: ignore[union-attr]
    r = client.post(f"/api/v1/actions/{run_id}/approve", headers=APPROVE)
    assert r.status_code == 200 and r.json()["status"] == "pending"
    assert client.post(f"/api/v1/actions/{run_id}/approve", headers=APPROVE).status_code == 409
    assert client.post("/api/v1/actions/99999999999999999999/approve", headers=APPROVE).status_code == 422
    assert any(e["kind"] == "run_approved" and e["event"]["by"] == "api" for e in rt.store.audit_entries())


def test_approve_endpoint_refuses_without_configured_auth(tmp_path: Path) -> None:
    client, rt = build(tmp_path, auth=False, approvals=False)
    run_id = _awaiting_run(rt)
    assert client.post(f"/api/v1/actions/{run_id}/approve").status_code == 403
    rt.store.close()


def test_webhook_token_alone_never_approves(tmp_path: Path) -> None:
    client, rt = build(tmp_path, approvals=False)
    run_id = _awaiting_run(rt)
    r = client.post(f"/api/v1/actions/{run_id}/approve", headers=AUTH)
    assert r.status_code == 403 and "approvals.auth" in r.json()["error"]
    assert rt.store.get_run(run_id).status == RunStatus.AWAITING_APPROVAL  # type: ignore[union-attr]
    assert rt.store.get_run(run_id).status == RunStatus.AWAITING_APPROVAL  # type: ignore[union-attr]
    rt.store.close()


def test_daemon_refuses_to_listen_beyond_loopback_without_auth(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    cfg = tmp_path / "aiopsd.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "listen": "0.0.0.0:19797",
                "state_url": f"sqlite:///{tmp_path / 's.db'}",
                "state_dir": str(tmp_path / "state"),
                "rules_dir": str(tmp_path / "rules"),
            }
        )
    )
    r = subprocess.run(
        [sys.executable, "-m", "aiopsd", "run", "--config", str(cfg)],
        capture_output=True,
        text=True,
        env=tool_env(),
        timeout=60,
        check=False,
    )
    assert r.returncode == 2
    assert "refusing to listen on 0.0.0.0:19797 without webhook auth" in " ".join(r.stderr.split())


# --------------------------------------------------------------------------------- fuzzing
def test_openapi_fuzz_never_5xx(tmp_path: Path) -> None:
    """schemathesis against the app's own spec, healthy store: no request to any operation gets a 5xx."""
    client, rt = build(tmp_path)
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    seen: dict[str, set[int]] = {}
    calls = [0]
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            if case.operation.path == "/api/v1/alerts" or "approve" in case.operation.path:
                case.headers = {**(case.headers or {}), **AUTH}
            response = case.call()
            calls[0] += 1
            seen.setdefault(f"{case.method} {case.operation.path}", set()).add(response.status_code)
            assert response.status_code < 500, (case.operation.path, response.status_code, response.text[:300])

        check()
    rt.store.close()
    print(
        f"schemathesis: {calls[0]} requests, status codes per operation:",
        {k: sorted(v) for k, v in sorted(seen.items())},
    )
    assert "POST /api/v1/alerts" in seen and len(seen) >= 8, seen
    assert 200 in seen["POST /api/v1/alerts"], seen  # the generator did produce valid payloads too


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
alert_like = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["firing", "resolved", "bogus"]) | json_values,
        "labels": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3) | json_values,
        "startsAt": st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.123456789+02:00", "", "x"]),
        "fingerprint": st.text(min_size=0, max_size=140),
    },
    optional={"annotations": json_values, "endsAt": json_values, "generatorURL": json_values},
)
payload_like = st.fixed_dictionaries(
    {
        "version": st.sampled_from(["4", "3", 4]),
        "status": st.sampled_from(["firing", "resolved"]),
        "alerts": st.lists(alert_like, max_size=5),
    },
    optional={"groupKey": json_values, "receiver": json_values},
)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.one_of(payload_like, json_values, st.binary(max_size=200)))
def test_webhook_payload_fuzz_is_2xx_or_4xx_and_2xx_means_stored(
    tmp_path_factory: pytest.TempPathFactory, body: Any
) -> None:
    tmp = tmp_path_factory.mktemp("fuzz")
    client, rt = build(tmp)
    try:
        r = post(client, body)
        assert r.status_code in (200, 400, 422), (r.status_code, r.text)
        if r.status_code == 200:
            sent = {(a["fingerprint"], a["status"], a["startsAt"]) for a in body["alerts"]}
            stored = {(a["fingerprint"], a["status"], a["starts_at"]) for a in rt.store.list_alerts(limit=1000)}
            assert sent == stored
        else:
            assert r.json()["error"]
            assert rt.store.counts()["alerts"] == 0
    finally:
        rt.store.close()
