"""JSON twins of the status page: ``/api/v1/overview``, ``/rules``, ``/sources``, ``/models``, ``/status``."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from aiopsd.daemon.http import overview
from aiopsd.daemon.http.model_dirs import models
from aiopsd.daemon.http.views import ModelView, Overview, RuleView, SourceView, Status
from aiopsd.daemon.runtime import Runtime


def create_status_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["status"])

    @router.get("/status", response_model=Status)
    def get_status() -> Status:
        """The daemon (version, replica, readiness, leader, config error, restart needed), the sources
        polled so far, the running rules and the counts: the page's own views."""
        return overview.status(runtime)

    @router.get("/overview", response_model=Overview)
    def get_overview() -> Overview:
        """Everything the status page shows: overall state and why, sources, findings (with their
        decisions and actions), recent actions, held decisions, rules, models, counts."""
        return overview.build(runtime)

    @router.get("/sources", response_model=list[SourceView])
    def get_sources() -> list[SourceView]:
        """Every source with its health, poll lag and where reading resumes."""
        return overview.sources(runtime)

    @router.get("/rules", response_model=list[RuleView])
    def get_rules() -> list[RuleView]:
        """The running rules with their cooldown, rate budget and circuit state."""
        return overview.rules(runtime, datetime.now(UTC))

    @router.get("/models", response_model=list[ModelView])
    def get_models() -> list[ModelView]:
        """Model registries (versions/<n>/metrics.json) named by retrain rules, newest version first."""
        return models(runtime)

    return router
