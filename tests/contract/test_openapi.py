"""The HTTP API's OpenAPI document is valid, lists every route, and types every JSON answer."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from openapi_spec_validator import validate
from pydantic import TypeAdapter

from aiopsd.daemon.http.api import create_app
from aiopsd.daemon.http.auth import Credentials
from aiopsd.daemon.http.views import ModelView, Overview, RuleView, SourceView, Status
from tests.support import make_runtime


def api_routes(routes: Any) -> set[tuple[str, str]]:
    """(method, path) of every API route, including those of included routers."""
    out: set[tuple[str, str]] = set()
    for r in routes:
        if isinstance(r, APIRoute):
            out |= {(m.lower(), r.path) for m in r.methods or ()}
        elif hasattr(r, "original_router"):  # FastAPI keeps included routers whole
            out |= api_routes(r.original_router.routes)
    return out


def spec_and_app(tmp_path: Path) -> tuple[dict[str, Any], Any]:
    app = create_app(make_runtime(tmp_path), Credentials(None, None, None))
    spec = TestClient(app).get("/openapi.json").json()
    return spec, app


def test_spec_is_valid_openapi(tmp_path: Path) -> None:
    spec, _ = spec_and_app(tmp_path)
    validate(spec)
    assert spec["info"]["title"] == "aiopsd"


def test_spec_lists_every_route(tmp_path: Path) -> None:
    spec, app = spec_and_app(tmp_path)
    routes = api_routes(app.routes)
    listed = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert routes == listed
    for path in (
        "/",
        "/actions/{run_id}",
        "/findings/{finding_id}",
        "/api/v1/overview",
        "/api/v1/rules",
        "/api/v1/sources",
        "/api/v1/models",
        "/api/v1/actions/{run_id}",
        "/metrics",
    ):
        assert path in spec["paths"], path


def test_every_json_answer_has_a_typed_schema(tmp_path: Path) -> None:
    spec, _ = spec_and_app(tmp_path)
    schemas = spec["components"]["schemas"]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            ok = op["responses"]["200"]
            content = ok.get("content", {})
            if "application/json" not in content:
                assert content, f"{method} {path}: 200 has no content type"
                continue
            schema = content["application/json"]["schema"]
            assert schema.get("$ref") or schema.get("type") or schema.get("items"), f"{method} {path}: untyped"
            ref = schema.get("$ref") or schema.get("items", {}).get("$ref")
            if ref:
                model = schemas[ref.rsplit("/", 1)[1]]
                assert model.get("properties"), f"{method} {path}: {ref} has no fields"
    overview = schemas["Overview"]["properties"]
    for field in ("state", "headline", "sources", "findings", "actions", "held", "rules", "models"):
        assert field in overview
    assert "circuit" in schemas["RuleView"]["properties"]
    assert "cursor" in schemas["SourceView"]["properties"]


def test_json_twins_answer_with_their_models(tmp_path: Path) -> None:
    _, app = spec_and_app(tmp_path)
    client = TestClient(app)
    for path, model in (("/api/v1/rules", RuleView), ("/api/v1/sources", SourceView), ("/api/v1/models", ModelView)):
        r = client.get(path)
        assert r.status_code == 200, path
        TypeAdapter(list[model]).validate_python(r.json())  # type: ignore[valid-type]
    body = client.get("/api/v1/overview").json()
    Overview.model_validate(body)
    assert body["state"] == "ok" and body["headline"][0]["text"].startswith("all quiet")


def test_status_answers_with_the_pages_source_and_rule_views(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(
        "rules:\n  - name: restart\n    match: {kind: anomaly}\n"
        "    action: {playbook: restart_service.yml, targets: web-1}\n    guards: {cooldown: 30m}\n"
    )
    rt = make_runtime(tmp_path, watches=[{"name": "polled", "query": "up"}, {"name": "waiting", "query": "up"}])
    rt.store.set_source("polled", "prometheus", up=False, now=datetime.now(UTC), error="boom")
    client = TestClient(create_app(rt, Credentials(None, None, None)))
    body = client.get("/api/v1/status").json()
    status = Status.model_validate(body)
    sources = {s["name"]: s for s in client.get("/api/v1/sources").json()}
    assert sources["waiting"]["state"] == "waiting" and not sources["waiting"]["up"]
    assert [s["name"] for s in body["sources"]] == ["polled"]  # only sources polled so far, as before
    assert body["sources"][0] == sources["polled"] and body["sources"][0]["up"] is False
    assert body["rules"] == client.get("/api/v1/rules").json()
    assert [r.name for r in status.rules] == ["restart"] and status.rules[0].cooldown_seconds == 1800
    assert status.replica == rt.replica and status.leader and status.ready and status.counts.alerts == 0
