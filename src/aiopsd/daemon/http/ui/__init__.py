"""The read-only status pages: ``/``, ``/findings/{id}``, ``/actions/{id}`` and drift reports.

Server-rendered HTML (jinja2, autoescaped) of :mod:`aiopsd.daemon.http.views`,
with inline SVG charts and one local stylesheet: no build step, no network, no
scripts. ``?refresh=N`` adds a ``<meta refresh>`` for a wall screen.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse
from jinja2 import Environment, PackageLoader
from markupsafe import Markup

from aiopsd.daemon.http import overview
from aiopsd.daemon.http.ui.chart import NARROW, WIDE, Mark, points_from_details, render_chart
from aiopsd.daemon.http.views import FindingView
from aiopsd.daemon.runtime import Runtime
from aiopsd.durations import format_duration
from aiopsd.models import Finding, FindingKind, FindingStatus, RunStatus

# Run ids are SQLite/PostgreSQL BIGINTs: a larger number is a 422, never an overflow inside the store.
RunId = Annotated[int, PathParam(ge=1, le=2**62)]

STATIC_DIR = Path(__file__).parent / "static"

_REPORTS = {"html": ("report_html", "text/html"), "json": ("report_json", "application/json")}


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("aiopsd.daemon.http.ui", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["hms"] = _hms
    env.filters["ago"] = _ago
    env.filters["dur"] = lambda s: "-" if s is None else format_duration(float(s))
    env.filters["num"] = _num
    env.filters["epoch"] = lambda v: _hms(datetime.fromtimestamp(float(v), UTC)) if isinstance(v, int | float) else v
    env.filters["kv"] = lambda v: ", ".join(f"{k}={x}" for k, x in v.items()) if isinstance(v, dict) else v
    env.filters["labels"] = lambda d: " ".join(f"{k}={v}" for k, v in sorted(d.items()) if k != "__name__")
    return env


def _hms(value: datetime | None) -> str:
    if value is None:
        return "-"
    now = datetime.now(UTC)
    fmt = "%H:%M:%S" if value.date() == now.date() else "%Y-%m-%d %H:%M:%S"
    return value.astimezone(UTC).strftime(fmt) + " UTC"


def _ago(value: datetime | None) -> str:
    if value is None:
        return ""
    secs = (datetime.now(UTC) - value).total_seconds()
    if secs < 0:
        return f"in {format_duration(-secs)}"
    if secs < 1:
        return "just now"
    return f"{format_duration(secs if secs < 120 else secs - secs % 60)} ago"


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower() if isinstance(value, bool) else "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def chart_for(view: FindingView) -> Markup | None:
    """The series chart of an anomaly finding, with the actions taken on it marked (None for other kinds)."""
    f = view.finding
    points = points_from_details(f.details)
    if not points:
        return None
    marks = [
        Mark(
            ts=(r.started_at or r.created_at).timestamp(),
            label=f"#{r.id} {r.what} {r.status}",
            ok=r.status == RunStatus.SUCCEEDED,
        )
        for r in view.runs
    ]
    end = (f.last_seen if f.status == FindingStatus.RESOLVED else datetime.now(UTC)).timestamp()
    title = f"{f.source}: value, expected band and anomalous points"
    incident = (f.starts_at.timestamp(), end)
    short = [Mark(m.ts, m.label.split(" ")[0], m.ok) for m in marks]
    svg = render_chart(points, title=title, marks=marks, incident=incident, size=WIDE) + render_chart(
        points, title=title, marks=short, incident=incident, size=NARROW
    )
    # render_chart escapes every data-derived text it puts in the SVG.
    return Markup(svg)  # noqa: S704


def drift_columns(f: Finding) -> list[dict[str, Any]]:
    cols = f.details.get("columns")
    if not isinstance(cols, dict):
        return []
    rows = [{"name": str(name), **(v if isinstance(v, dict) else {})} for name, v in cols.items()]
    rows.sort(key=lambda r: (not r.get("drift"), r["name"]))
    return rows


def report_path(runtime: Runtime, f: Finding, fmt: str) -> Path | None:
    """The finding's report artefact, only if it is a file under the state directory."""
    key = _REPORTS[fmt][0]
    raw = f.details.get(key)
    if not isinstance(raw, str) or not raw:
        return None
    root = Path(runtime.settings.state_dir).resolve()
    path = Path(raw)
    path = (path if path.is_absolute() else root / path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def create_ui_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(tags=["pages"])
    env = _env()

    def page(name: str, refresh: int | None, **ctx: Any) -> HTMLResponse:
        refresh = max(5, min(refresh, 3600)) if refresh else None
        html = env.get_template(name).render(refresh=refresh, now=datetime.now(UTC), **ctx)
        return HTMLResponse(html)

    def reports(f: Finding) -> dict[str, bool]:
        return {fmt: report_path(runtime, f, fmt) is not None for fmt in _REPORTS}

    @router.get("/", response_class=HTMLResponse, summary="Status page")
    def index(refresh: int | None = None) -> HTMLResponse:
        """What aiopsd saw, did, and refused to do, on one page (HTML)."""
        ov = overview.build(runtime)
        charts = {fv.finding.id: chart_for(fv) for fv in ov.findings}
        drift = {fv.finding.id: drift_columns(fv.finding) for fv in ov.findings if fv.finding.kind == FindingKind.DRIFT}
        return page(
            "index.html",
            refresh,
            ov=ov,
            charts=charts,
            drift=drift,
            reports={fv.finding.id: reports(fv.finding) for fv in ov.findings},
            labels=overview.REASON_LABELS,
        )

    @router.get(
        "/findings/{finding_id}",
        response_class=HTMLResponse,
        summary="Finding page",
        responses={404: {"description": "No such finding"}},
    )
    def finding_page(finding_id: str, refresh: int | None = None) -> HTMLResponse:
        """One finding: its chart or drifted columns, every decision on it and the actions taken (HTML)."""
        f = runtime.store.get_finding(finding_id)
        if f is None:
            raise HTTPException(404, f"no finding {finding_id}")
        fv = overview.finding_views(runtime, [f])[0]
        return page(
            "finding.html",
            refresh,
            fv=fv,
            chart=chart_for(fv),
            drift=drift_columns(f),
            reports=reports(f),
            labels=overview.REASON_LABELS,
        )

    @router.get(
        "/actions/{run_id}",
        response_class=HTMLResponse,
        summary="Action page",
        responses={404: {"description": "No such action run"}},
    )
    def action_page(run_id: RunId, refresh: int | None = None) -> HTMLResponse:
        """One action run: status, target, duration, the decision's reason and the playbook output (HTML)."""
        run = runtime.store.get_run(run_id)
        if run is None:
            raise HTTPException(404, f"no action run {run_id}")
        d = runtime.store.get_decision(run.decision_id)
        f = runtime.store.get_finding(d.finding_id) if d else None
        return page("action.html", refresh, run=run, summary=overview.summarize_run(run, d, f), decision=d, finding=f)

    @router.get(
        "/findings/{finding_id}/report.{fmt}",
        summary="Drift report artefact",
        response_class=FileResponse,
        responses={
            200: {
                "content": {
                    "text/html": {"schema": {"type": "string"}},
                    "application/json": {"schema": {"type": "object"}},
                },
                "description": "The Evidently report of a drift finding",
            },
            404: {"description": "No report for this finding"},
        },
    )
    def report(finding_id: str, fmt: str) -> FileResponse:
        """The Evidently report (HTML or JSON) of a drift finding; only files under the state directory."""
        f = runtime.store.get_finding(finding_id)
        if f is None or fmt not in _REPORTS:
            raise HTTPException(404, "no such report")
        path = report_path(runtime, f, fmt)
        if path is None:
            raise HTTPException(404, f"finding {finding_id} has no {fmt} report under the state directory")
        return FileResponse(path, media_type=_REPORTS[fmt][1])

    return router
