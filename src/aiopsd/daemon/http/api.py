"""The HTTP surface: read-only JSON API, the Alertmanager webhook, approvals, /metrics, health.

Only the webhook and approvals change anything, and both need the configured
credentials when any are set. Answers to Alertmanager follow its retry rules:
2xx only once the alerts are durable, 4xx (never retried) for a payload that
will never be valid, 503 (retried) when the store cannot commit or we are
shutting down.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from aiopsd import __version__
from aiopsd.daemon.http.auth import Credentials
from aiopsd.daemon.http.intake import GroupCommitter
from aiopsd.daemon.http.lifecycle import create_lifecycle_router
from aiopsd.daemon.http.status_api import create_status_router
from aiopsd.daemon.http.ui import STATIC_DIR, RunId, create_ui_router
from aiopsd.daemon.http.webhook import WebhookApp, WebhookIntake
from aiopsd.daemon.runtime import Runtime
from aiopsd.errors import StoreUnavailableError
from aiopsd.models import ActionRun, Decision, Finding, Frozen
from aiopsd.sources.alertmanager import webhook_openapi_schema

logger = logging.getLogger(__name__)


class WebhookAnswer(Frozen):
    accepted: int
    duplicates: int


class AlertRecord(Frozen):
    id: int
    fingerprint: str
    status: str
    starts_at: str
    alertname: str | None
    labels: dict[str, str]
    received_at: datetime
    finding_id: str | None


class AuditRecord(Frozen):
    seq: int
    at: datetime
    kind: str
    event: dict[str, Any]
    hash: str


class ActionDetail(Frozen):
    run: ActionRun
    decision: Decision | None
    finding: Finding | None


class RuleRestored(Frozen):
    rule: str
    restored_at: datetime


class FindingDetail(Frozen):
    finding: Finding
    decisions: list[Decision]


# Run ids are SQL integers: anything larger is a 422, not a database overflow.


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(runtime: Runtime, credentials: Credentials, approvals: Credentials | None = None) -> FastAPI:
    """Build the FastAPI app for one daemon; tests build it the same way.

    ``credentials`` guard the webhook, ``approvals`` (``approvals.auth``) the approve endpoint;
    without approval credentials HTTP approvals are refused.
    """
    approver = approvals or Credentials(None, None, None)
    app = WebhookApp(
        title="aiopsd",
        version=__version__,
        description="Read-only status API of aiopsd, its Alertmanager webhook and approvals.",
    )
    store, metrics = runtime.store, runtime.metrics
    intake = GroupCommitter(store)
    app.state.intake = intake
    webhook = WebhookIntake(runtime, credentials, intake)
    # POST /api/v1/alerts skips Starlette's stack (daemon/http/webhook.py); the route below documents it.
    app.webhook = webhook

    @app.exception_handler(StoreUnavailableError)
    def _store_down(_request: Request, exc: StoreUnavailableError) -> JSONResponse:
        logger.error("%s", exc)
        return _error(503, "state store unavailable; retry later")

    @app.exception_handler(Exception)
    def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Never a 500: a sender retries a 503, and the traceback goes to the log, not the client.
        logger.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return _error(503, f"internal error ({exc.__class__.__name__}); retry later")

    @app.post(
        "/api/v1/alerts",
        response_model=WebhookAnswer,
        tags=["webhook"],
        responses={400: {}, 401: {}, 413: {}, 422: {}, 503: {}},
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": webhook_openapi_schema()}}}
        },
    )
    async def receive_alerts(request: Request) -> Response:
        """Alertmanager webhook (payload version 4). 200 means every alert is durable."""
        headers = request.headers
        code, body = await webhook.receive(
            headers.get("authorization"), headers.get("content-length"), request.stream()
        )
        return JSONResponse(body, status_code=code)

    @app.get("/api/v1/alerts", response_model=list[AlertRecord], tags=["status"])
    def alerts(limit: int = 100) -> list[AlertRecord]:
        """Alerts received from Alertmanager, newest first (each delivery kept once)."""
        return [AlertRecord(**a) for a in store.list_alerts(limit=max(1, min(limit, 1000)))]

    @app.get("/api/v1/findings", response_model=list[Finding], tags=["status"])
    def findings(status: str | None = None, kind: str | None = None, limit: int = 100) -> list[Finding]:
        return store.list_findings(limit=max(1, min(limit, 1000)), status=status, kind=kind)

    @app.get("/api/v1/findings/{finding_id}", response_model=FindingDetail, tags=["status"])
    def finding(finding_id: str) -> FindingDetail:
        f = store.get_finding(finding_id)
        if f is None:
            raise HTTPException(404, f"no finding {finding_id}")
        return FindingDetail(finding=f, decisions=store.list_decisions(finding_id=finding_id, limit=1000))

    @app.get("/api/v1/decisions", response_model=list[Decision], tags=["status"])
    def decisions(outcome: str | None = None, limit: int = 100) -> list[Decision]:
        return store.list_decisions(limit=max(1, min(limit, 1000)), outcome=outcome)

    @app.get("/api/v1/actions", response_model=list[ActionRun], tags=["status"])
    def actions(status: str | None = None, limit: int = 100) -> list[ActionRun]:
        return store.list_runs(limit=max(1, min(limit, 1000)), status=status)

    @app.get("/api/v1/actions/{run_id}", response_model=ActionDetail, tags=["status"])
    def action(run_id: RunId) -> ActionDetail:
        run = store.get_run(run_id)
        if run is None:
            raise HTTPException(404, f"no action run {run_id}")
        decision = store.get_decision(run.decision_id)
        found = store.get_finding(decision.finding_id) if decision else None
        return ActionDetail(run=run, decision=decision, finding=found)

    @app.get("/api/v1/audit", response_model=list[AuditRecord], tags=["status"])
    def audit(limit: int = 100) -> list[AuditRecord]:
        """The hash-chained audit log, newest first (verify it with `aiopsd audit verify`)."""
        return [AuditRecord(**e) for e in store.audit_entries(limit=max(1, min(limit, 1000)))]

    @app.post(
        "/api/v1/actions/{run_id}/approve",
        response_model=ActionRun,
        tags=["approvals"],
        responses={401: {}, 403: {}, 409: {}},
    )
    def approve(run_id: RunId, request: Request) -> Response:
        if not approver.required:
            return _error(
                403,
                "approvals over HTTP need approvals.auth configured (the webhook's credential "
                "cannot approve); use `aiopsd approve ID` on the host",
            )
        if not approver.check(request.headers.get("authorization")):
            return _error(401, "missing or wrong approval credentials")
        run = store.approve_run(run_id, datetime.now(UTC), by="api")
        if run is None:
            return _error(409, f"action run {run_id} is not awaiting approval")
        return JSONResponse(run.model_dump(mode="json"))

    @app.post(
        "/api/v1/rules/{name}/restore",
        response_model=RuleRestored,
        tags=["approvals"],
        responses={401: {}, 403: {}, 404: {}},
    )
    def restore(name: str, request: Request) -> Response:
        """Give a rule demoted by min_success its autonomy back (its outcomes so far no longer count)."""
        if not approver.required:
            return _error(
                403, "restoring a rule over HTTP needs approvals.auth configured; use `aiopsd rules restore NAME`"
            )
        if not approver.check(request.headers.get("authorization")):
            return _error(401, "missing or wrong approval credentials")
        if name not in runtime.rules_by_name():
            return _error(404, f"no rule named {name!r} in the running rule set")
        now = datetime.now(UTC)
        store.restore_rule(name, now, by="api")
        return JSONResponse(RuleRestored(rule=name, restored_at=now).model_dump(mode="json"))

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/-/healthy", tags=["health"], response_class=PlainTextResponse)
    def healthy() -> str:
        return "aiopsd is healthy\n"

    @app.get("/-/ready", tags=["health"], response_class=PlainTextResponse)
    def ready() -> Response:
        if runtime.draining.is_set():
            return PlainTextResponse("shutting down\n", status_code=503)
        if not runtime.ready.is_set() or not store.ping():
            return PlainTextResponse("not ready\n", status_code=503)
        return PlainTextResponse("aiopsd is ready\n")

    app.include_router(create_status_router(runtime))
    app.include_router(create_lifecycle_router(runtime, approver))
    app.include_router(create_ui_router(runtime))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
