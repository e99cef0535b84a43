"""JSON twins of the status page: ``/api/v1/overview``, ``/rules``, ``/sources``, ``/models``."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from aiopsd.daemon.http import overview
from aiopsd.daemon.runtime import Runtime


def create_status_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["status"])

    @router.get("/overview", response_model=overview.Overview)
    def get_overview() -> overview.Overview:
        """Everything the status page shows: overall state and why, sources, findings (with their
        decisions and actions), recent actions, held decisions, rules, models, counts."""
        return overview.build(runtime)

    @router.get("/sources", response_model=list[overview.SourceView])
    def get_sources() -> list[overview.SourceView]:
        """Every source with its health, poll lag and where reading resumes."""
        return overview.sources(runtime)

    @router.get("/rules", response_model=list[overview.RuleView])
    def get_rules() -> list[overview.RuleView]:
        """The running rules with their cooldown, rate budget and circuit state."""
        return overview.rules(runtime, datetime.now(UTC))

    @router.get("/models", response_model=list[overview.ModelView])
    def get_models() -> list[overview.ModelView]:
        """Model registries (versions/<n>/metrics.json) named by retrain rules, newest version first."""
        return overview.models(runtime)

    return router
