"""Champion/challenger cards for every prediction log with a model store (directory or MLflow), the
JSON twin ``GET /api/v1/models/lifecycle``, and ``POST .../approve`` (approval credentials).

The cards read the lifecycle records the drift watch keeps with each version in the store
(:mod:`aiopsd.sources.predictions.lifecycle`); reading them never loads a model.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse

from aiopsd.config import PredictionLogConfig
from aiopsd.daemon.http.auth import Credentials
from aiopsd.daemon.http.views import ComparisonView, LifecycleView, RegressionWatchView
from aiopsd.daemon.runtime import Runtime
from aiopsd.model_store import ModelStore, RegistryError, open_store, spec_for
from aiopsd.model_store.approve import approve

logger = logging.getLogger(__name__)


def _store(cfg: PredictionLogConfig) -> ModelStore | None:
    spec = spec_for(cfg.model_store, model=cfg.model, model_dir=cfg.model_dir)
    return open_store(spec) if spec is not None else None


def _span(cfg: PredictionLogConfig) -> str | None:
    shadow = cfg.lifecycle.shadow if cfg.lifecycle is not None else None
    if shadow is None:
        return None
    return f"{shadow.rows} labelled rows" if shadow.rows else f"{shadow.for_:g}s of log"


def card(cfg: PredictionLogConfig) -> LifecycleView | None:
    """The card of one prediction log (None: it has no model store)."""
    backend = (cfg.model_store.kind if cfg.model_store else "directory") if (cfg.model_store or cfg.model_dir) else ""
    try:
        store = _store(cfg)
        if store is None:
            return None
        versions = store.list_versions()
    except (RegistryError, OSError) as exc:
        return LifecycleView(
            model=cfg.model, store="?", backend=backend, champion=None, state="unknown", error=str(exc)[:300]
        )
    champion = next((v.number for v in versions if v.current), None)
    shadows = [v for v in versions if v.status == "shadow"]
    recorded = [v for v in versions if isinstance(v.meta.get("lifecycle"), dict)]
    subject = shadows[-1] if shadows else (recorded[-1] if recorded else None)
    rec: dict[str, Any] = dict(subject.meta["lifecycle"]) if subject and subject in recorded else {}
    comparison = rec.get("comparison")
    watch = rec.get("watch")
    decision = rec.get("decision")
    return LifecycleView(
        model=cfg.model,
        store=store.label,
        backend=backend,
        champion=champion,
        challenger=subject.number if subject else None,
        challenger_status=subject.status if subject else None,
        previous=rec["champion"] if isinstance(rec.get("champion"), int) else None,
        state=str(rec.get("state", "shadow" if shadows else "none")),
        span=_span(cfg),
        comparison=ComparisonView.model_validate(comparison) if isinstance(comparison, dict) else None,
        decision={k: None if v is None else str(v) for k, v in decision.items()}
        if isinstance(decision, dict)
        else None,
        watch=RegressionWatchView.model_validate(watch) if isinstance(watch, dict) else None,
    )


def cards(runtime: Runtime) -> list[LifecycleView]:
    out: list[LifecycleView] = []
    for cfg in runtime.settings.prediction_logs:
        c = card(cfg)
        if c is not None and (cfg.lifecycle is not None or c.challenger is not None):
            out.append(c)
    return out


def create_lifecycle_router(runtime: Runtime, approver: Credentials) -> APIRouter:
    router = APIRouter(prefix="/api/v1/models")

    @router.get("/lifecycle", response_model=list[LifecycleView], tags=["status"])
    def lifecycle() -> list[LifecycleView]:
        """Per model: champion, challenger, rows compared, metric and interval, decision, regression watch."""
        return cards(runtime)

    @router.post(
        "/{model}/versions/{version}/approve",
        response_model=LifecycleView,
        tags=["approvals"],
        responses={401: {}, 403: {}, 404: {}, 409: {}},
    )
    def approve_version(
        request: Request,
        model: str = Path(pattern=r"^[a-zA-Z0-9_.-]{1,200}$"),
        version: int = Path(ge=1, le=2**31 - 1),
    ) -> Response:
        """Promote a challenger in shadow (or a candidate) now: an operator's decision, audited."""
        if not approver.required:
            return JSONResponse({"error": "approvals over HTTP need approvals.auth configured"}, status_code=403)
        if not approver.check(request.headers.get("authorization")):
            return JSONResponse({"error": "missing or wrong approval credentials"}, status_code=401)
        logs = {p.model: p for p in runtime.settings.prediction_logs}
        store = _store(logs[model]) if model in logs else None
        if store is None:
            return JSONResponse({"error": f"no prediction log with a model store for {model!r}"}, status_code=404)
        try:
            approve(store, version, by="api", audit=runtime.store.audit, model=model)
        except RegistryError as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        logger.info("%s v%d approved over HTTP at %s", model, version, datetime.now(UTC).isoformat())
        found = card(logs[model])
        return JSONResponse(found.model_dump(mode="json") if found else {})

    return router
