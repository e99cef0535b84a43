"""A rule's closed-loop health on the API, the page and the terminal; the restore endpoint's auth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from rich.console import Console

from aiopsd.config import WebhookAuth
from aiopsd.daemon.dispatcher import Dispatcher
from aiopsd.daemon.http.api import create_app
from aiopsd.daemon.http.auth import load_credentials
from aiopsd.daemon.http.ui.terminal import render
from aiopsd.daemon.http.views import Overview
from aiopsd.engine.rules import Rule
from aiopsd.models import RunStatus
from aiopsd.sources.alertmanager import WebhookAlert
from tests.support import make_runtime

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
APPROVE = {"Authorization": "Bearer approver"}

RULE: dict[str, Any] = {
    "name": "fix",
    "match": {"kind": "alert"},
    "action": {"log": {"message": "fix {{ labels.host }}"}},
    "verify": {"after": "1m", "within": "5m"},
    "min_success": {"of_last": 3, "verified": 2},
}


def _not_verified_twice(rt: Any) -> None:
    d = Dispatcher(rt)
    try:
        for host in ("web-1", "web-2"):
            a = WebhookAlert.model_validate(
                {"status": "firing", "labels": {"host": host}, "startsAt": "2026-01-01T00:00:00Z", "fingerprint": host}
            )
            rt.store.accept_alerts([a.to_incoming()], received_at=T0.timestamp(), receiver="x", group_key="g")
        d.decide(T0)
        for claim in rt.store.claim_runnable(T0, limit=5, owner=rt.replica):
            rt.store.finish_run(claim.run.id, RunStatus.SUCCEEDED, finished_at=T0, rc=0, output="", owner=rt.replica)
        d.verifier.tick(T0 + timedelta(seconds=70))
        d.verifier.tick(T0 + timedelta(seconds=400))
    finally:
        d.shutdown(1)


def test_demotion_shows_on_the_api_page_and_terminal_and_an_authenticated_call_restores(tmp_path: Path) -> None:
    rt = make_runtime(tmp_path, alerts={"max_age": 10 * 365 * 86400})
    rt.set_rules([Rule.model_validate(RULE)])
    _not_verified_twice(rt)
    approver = load_credentials(WebhookAuth(bearer_token="approver"))
    client = TestClient(create_app(rt, load_credentials(WebhookAuth()), approver))
    try:
        [view] = client.get("/api/v1/rules").json()
        health = view["health"]
        assert health["demoted"] and "min_success 2 of the last 3" in health["demoted_reason"]
        assert health["outcomes"] == ["not_verified", "not_verified"] and health["success_rate"] == 0.0
        runs = client.get("/api/v1/actions").json()
        assert {r["verification"]["outcome"] for r in runs} == {"not_verified"}
        page = client.get("/").text
        assert "demoted: needs approval" in page and "not verified" in page
        ov = Overview.model_validate(client.get("/api/v1/overview").json())
        console = Console(width=200, record=True)
        console.print(render(ov, "http://x"))
        assert "DEMOTED, needs approval" in console.export_text()

        assert client.post("/api/v1/rules/fix/restore").status_code == 401
        assert client.post("/api/v1/rules/nope/restore", headers=APPROVE).status_code == 404
        r = client.post("/api/v1/rules/fix/restore", headers=APPROVE)
        assert r.status_code == 200 and r.json()["rule"] == "fix"
        [view] = client.get("/api/v1/rules").json()
        assert not view["health"]["demoted"] and view["health"]["judged"] == 0
        assert rt.store.audit_entries(limit=1)[0]["kind"] == "rule_restored"
    finally:
        rt.store.close()
