"""What the on-call person needs at a glance, read from the store: one typed model.

The status page (``GET /``), the JSON API (``/api/v1/overview``, ``/rules``,
``/sources``, ``/models``) and ``aiopsd status`` all render this one model, so
the three never disagree. Building it only reads: the store, the running rule
set and the model directories.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from aiopsd import __version__
from aiopsd.daemon.runtime import Runtime
from aiopsd.durations import format_duration
from aiopsd.engine.history import engine_state
from aiopsd.engine.rules import Rule
from aiopsd.models import ActionRun, Decision, Finding, FindingKind, FindingStatus, Outcome, RunStatus

logger = logging.getLogger(__name__)

Level = Literal["ok", "warn", "bad"]

RECENT_ACTIONS = 20
RECENT_HELD = 30
RECENT_RESOLVED = 8
RESOLVED_HORIZON = timedelta(hours=24)
FAILED_HORIZON = timedelta(hours=1)

# What each reason code means to a person (codes the engine may add later show as-is).
REASON_LABELS: dict[str, str] = {
    "cooldown": "cooldown",
    "circuit_open": "circuit open",
    "rate_budget": "rate budget spent",
    "awaiting_approval": "awaiting approval",
    "dry_run": "dry run",
    "source_down": "source down",
    "stale": "stale data",
    "max_hosts": "too many hosts",
    "no_targets": "no targets",
    "template_error": "template error",
    "unsafe_target": "unsafe target (a label is a host pattern, not a host)",
    "on_resolved_unsafe_target": "unsafe target (a label is a host pattern, not a host)",
    "maintenance": "maintenance window",
    "silenced": "silenced in Alertmanager",
    "silences_unknown": "silences unknown",
    "dropped_after_maintenance": "dropped after maintenance",
}

_FAILED = {RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.INTERRUPTED}
_OPEN = {RunStatus.PENDING, RunStatus.RUNNING, RunStatus.AWAITING_APPROVAL}


class Headline(BaseModel):
    level: Level
    text: str


class DaemonInfo(BaseModel):
    version: str
    replica: str
    started_at: datetime
    uptime_seconds: float
    ready: bool
    draining: bool
    dry_run: bool = Field(description="Global dry run: every action runs in check mode")
    config_error: str = Field(description="Why the last reload was rejected (empty when it succeeded)")


class SourceView(BaseModel):
    name: str
    kind: str = Field(description="prometheus, predictions, ...")
    state: Literal["up", "down", "waiting"] = Field(description="waiting: configured but not polled yet")
    configured: bool = Field(description="Part of the running configuration")
    detail: str = Field(description="The PromQL query or the log path")
    last_ok: datetime | None
    last_error_at: datetime | None
    error: str
    lag_seconds: float | None = Field(description="Age of the newest sample at the last poll")
    updated_at: datetime | None
    cursor: dict[str, Any] = Field(default_factory=dict,
                                   description="Where reading resumes: Prometheus watermark or log offsets")


class RunSummary(BaseModel):
    """An action run without its (long) output; the detail route has the output."""

    id: int
    rule: str
    kind: str
    what: str = Field(description="The playbook, or the action kind")
    targets: list[str]
    status: RunStatus
    attempt: int
    dry_run: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    rc: int | None
    error: str
    decision_id: str
    reason: str = Field(description="Why the engine decided to act")
    finding_id: str | None
    finding_summary: str


class FindingView(BaseModel):
    finding: Finding
    decisions: list[Decision]
    runs: list[RunSummary]


class HeldDecision(BaseModel):
    """A decision that did not (yet) change anything, and why."""

    decision: Decision
    code: str = Field(description="cooldown, circuit_open, rate_budget, awaiting_approval, dry_run, ...")
    label: str
    run_id: int | None = Field(description="The held run (awaiting approval, dry run)")
    finding_summary: str


class CircuitState(BaseModel):
    open: bool
    reason: str


class RuleView(BaseModel):
    name: str
    description: str
    enabled: bool
    action: str
    what: str = Field(description="The playbook, model dir or message the action uses")
    match: str
    cooldown_seconds: float
    cooling_down_until: datetime | None = Field(description="Last action + cooldown, while in the future")
    max_per_window: str | None
    actions_in_window: int | None
    require_approval: bool
    dry_run: bool
    circuit: CircuitState
    last_action_at: datetime | None


class ModelVersion(BaseModel):
    version: str
    current: bool
    created_at: datetime | None
    metrics: dict[str, float | int | str | bool | None]


class ModelView(BaseModel):
    name: str
    path: str
    current: str | None
    versions: list[ModelVersion]


class Counts(BaseModel):
    alerts: int
    findings: dict[str, int]
    decisions: dict[str, int]
    runs: dict[str, int]


class Overview(BaseModel):
    generated_at: datetime
    state: Level = Field(description="ok: nothing to do; warn: something firing or waiting; bad: look now")
    headline: list[Headline]
    daemon: DaemonInfo
    sources: list[SourceView]
    findings: list[FindingView] = Field(description="Firing first, then recently resolved")
    actions: list[RunSummary]
    held: list[HeldDecision]
    rules: list[RuleView]
    models: list[ModelView]
    counts: Counts


# ---------------------------------------------------------------- builders
def run_what(run: ActionRun | Decision) -> str:
    action = run.action
    if action.get("playbook"):
        return str(action["playbook"])
    kind = run.kind if isinstance(run, ActionRun) else (run.action_kind or "")
    return kind or "action"


def summarize_run(run: ActionRun, decision: Decision | None, finding: Finding | None) -> RunSummary:
    duration = None
    if run.started_at is not None:
        end = run.finished_at or datetime.now(UTC)
        duration = max(0.0, (end - run.started_at).total_seconds())
    return RunSummary(id=run.id, rule=run.rule, kind=run.kind, what=run_what(run), targets=list(run.targets),
                      status=run.status, attempt=run.attempt, dry_run=run.dry_run, created_at=run.created_at,
                      started_at=run.started_at, finished_at=run.finished_at, duration_seconds=duration,
                      rc=run.rc, error=run.error, decision_id=run.decision_id,
                      reason=decision.reason if decision else "",
                      finding_id=decision.finding_id if decision else None,
                      finding_summary=finding.summary if finding else "")


def sources(runtime: Runtime) -> list[SourceView]:
    store, settings = runtime.store, runtime.settings
    stored = {s["name"]: s for s in store.list_sources()}
    cursors = store.list_cursors()
    details = {w.name: w.query for w in settings.watches}
    kinds = {w.name: "prometheus" for w in settings.watches}
    out: list[SourceView] = []
    for name in sorted(set(stored) | set(details)):
        row = stored.get(name)
        kind = row["kind"] if row else kinds[name]
        cursor: dict[str, Any] = {}
        for cname, value in cursors.items():
            if cname == f"{kind}:{name}" or cname.startswith(f"{kind}:{name}:"):
                cursor.update(value if cname == f"{kind}:{name}" else {cname.split(":", 2)[2]: value})
        state: Literal["up", "down", "waiting"] = "waiting" if row is None else ("up" if row["up"] else "down")
        out.append(SourceView(
            name=name, kind=kind, state=state, configured=name in details or kind != "prometheus",
            detail=details.get(name, ""), last_ok=row["last_ok"] if row else None,
            last_error_at=row["last_error_at"] if row else None, error=row["error"] if row else "",
            lag_seconds=row["lag_seconds"] if row else None, updated_at=row["updated_at"] if row else None,
            cursor=cursor))
    return out


def rules(runtime: Runtime, now: datetime) -> list[RuleView]:
    ruleset = list(runtime.rules_by_name().values())
    state = engine_state(runtime.store, ruleset, now, sources_down={})
    out: list[RuleView] = []
    for r in ruleset:
        g = r.guards
        last = max((t for (name, _), t in state.last_action.items() if name == r.name), default=None)
        until = last + timedelta(seconds=g.cooldown) if last is not None and g.cooldown > 0 else None
        budget = used = None
        if g.max_per_window is not None:
            budget = f"{g.max_per_window.count} per {format_duration(g.max_per_window.window)}"
            since = now - timedelta(seconds=g.max_per_window.window)
            used = sum(1 for t in state.recent_actions.get(r.name, ()) if t > since)
        reason = state.open_circuits.get(r.name, "")
        out.append(RuleView(
            name=r.name, description=r.description, enabled=r.enabled, action=r.action.kind,
            what=_rule_what(r), match=_match_text(r), cooldown_seconds=g.cooldown,
            cooling_down_until=until if until is not None and until > now else None,
            max_per_window=budget, actions_in_window=used, require_approval=g.require_approval,
            dry_run=g.dry_run, circuit=CircuitState(open=bool(reason), reason=reason), last_action_at=last))
    return out


def _rule_what(rule: Rule) -> str:
    a = rule.action.model_dump(mode="json")
    if a.get("playbook"):
        return str(a["playbook"])
    for key, field in (("retrain", "model_dir"), ("notify", "message"), ("silence", "comment")):
        if isinstance(a.get(key), dict):
            return str(a[key].get(field, key))
    return rule.action.kind


def _match_text(rule: Rule) -> str:
    m = rule.match
    parts = [str(m.kind) if m.kind else "any finding"]
    if m.source:
        parts.append(f"source={m.source}")
    parts += [f"{k}={v}" for k, v in sorted(m.labels.items())]
    if m.min_score is not None:
        parts.append(f"score>={m.min_score:g}")
    return " ".join(parts)


def model_dirs(runtime: Runtime) -> list[Path]:
    """Model registries of the prediction logs, named by retrain rules, and any under ``<state_dir>/models``."""
    dirs: list[Path] = [p.model_dir for p in runtime.settings.prediction_logs if p.model_dir is not None]
    for r in runtime.rules_by_name().values():
        raw = r.action.model_dump(mode="json").get("retrain")
        if isinstance(raw, dict) and raw.get("model_dir") and "{" not in str(raw["model_dir"]):
            dirs.append(Path(str(raw["model_dir"])))
    registry = Path(runtime.settings.state_dir) / "models"
    if registry.is_dir():
        dirs += sorted(p for p in registry.iterdir() if p.is_dir())
    unique = list(dict.fromkeys(dirs))
    return [d for d in unique if (d / "versions").is_dir()]


def read_model(path: Path) -> ModelView:
    current = _current_version(path)
    versions: list[ModelVersion] = []
    for vdir in sorted((path / "versions").iterdir(), key=_version_key, reverse=True):
        if not vdir.is_dir():
            continue
        metrics: dict[str, float | int | str | bool | None] = {}
        created = None
        mfile = vdir / "metrics.json"
        if mfile.is_file():
            try:
                raw = json.loads(mfile.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                metrics = {"error": f"unreadable metrics.json: {exc}"}
            else:
                metrics = _flat_scalars(raw) if isinstance(raw, dict) else {}
            created = datetime.fromtimestamp(mfile.stat().st_mtime, UTC)
        versions.append(ModelVersion(version=vdir.name, current=vdir.name == current, created_at=created,
                                     metrics=metrics))
    return ModelView(name=path.name, path=str(path), current=current, versions=versions)


def _current_version(path: Path) -> str | None:
    pointer = path / "current"
    if pointer.is_symlink():
        return Path(str(pointer.readlink())).name
    if pointer.is_file():
        text = pointer.read_text(encoding="utf-8").strip()
        return Path(text).name or None
    return None


def _version_key(p: Path) -> tuple[int, str]:
    return (int(p.name), "") if p.name.isdigit() else (-1, p.name)


def _flat_scalars(raw: dict[str, Any], prefix: str = "") -> dict[str, float | int | str | bool | None]:
    out: dict[str, float | int | str | bool | None] = {}
    for k, v in raw.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat_scalars(v, f"{key}."))
        elif v is None or isinstance(v, bool | int | str):
            out[key] = v
        elif isinstance(v, float):
            out[key] = v if math.isfinite(v) else None
    return out


def models(runtime: Runtime) -> list[ModelView]:
    out: list[ModelView] = []
    for d in model_dirs(runtime):
        try:
            out.append(read_model(d))
        except OSError as exc:
            logger.warning("cannot read model registry %s: %s", d, exc)
    return out


def finding_views(runtime: Runtime, findings: Sequence[Finding]) -> list[FindingView]:
    store = runtime.store
    out: list[FindingView] = []
    for f in findings:
        decisions = store.list_decisions(finding_id=f.id, limit=100)
        runs = store.runs_for_decisions([d.id for d in decisions])
        by_id = {d.id: d for d in decisions}
        out.append(FindingView(finding=f, decisions=decisions,
                               runs=[summarize_run(r, by_id.get(r.decision_id), f) for r in runs]))
    return out


def build(runtime: Runtime, now: datetime | None = None) -> Overview:
    now = now or datetime.now(UTC)
    store, settings = runtime.store, runtime.settings
    firing = store.list_findings(status=str(FindingStatus.FIRING), limit=50)
    # Findings with a chart or drifted columns first: they carry the most evidence.
    firing.sort(key=lambda f: f.kind == FindingKind.ALERT)
    resolved = [f for f in store.list_findings(status=str(FindingStatus.RESOLVED), limit=RECENT_RESOLVED)
                if now - f.last_seen < RESOLVED_HORIZON]
    findings = finding_views(runtime, firing + resolved)
    finding_cache = {fv.finding.id: fv.finding for fv in findings}

    def finding(fid: str | None) -> Finding | None:
        if fid is None:
            return None
        if fid not in finding_cache:
            found = store.get_finding(fid)
            if found is None:
                return None
            finding_cache[fid] = found
        return finding_cache[fid]

    runs = store.list_runs(limit=RECENT_ACTIONS)
    actions: list[RunSummary] = []
    for run in runs:
        d = store.get_decision(run.decision_id)
        actions.append(summarize_run(run, d, finding(d.finding_id if d else None)))
    held = _held(runtime, finding)
    source_views = sources(runtime)
    rule_views = rules(runtime, now)
    c = store.counts()
    counts = Counts(alerts=int(c["alerts"]), findings=dict(c["findings"]), decisions=dict(c["decisions"]),
                    runs=dict(c["runs"]))
    daemon = DaemonInfo(version=__version__, replica=runtime.replica,
                        started_at=datetime.fromtimestamp(runtime.started_at, UTC),
                        uptime_seconds=max(0.0, now.timestamp() - runtime.started_at),
                        ready=runtime.ready.is_set(), draining=runtime.draining.is_set(),
                        dry_run=settings.actions.dry_run, config_error=runtime.last_reload_error)
    state, headline = assess(now, daemon, source_views, [fv.finding for fv in findings], actions, held,
                             rule_views)
    return Overview(generated_at=now, state=state, headline=headline, daemon=daemon, sources=source_views,
                    findings=findings, actions=actions, held=held, rules=rule_views, models=models(runtime),
                    counts=counts)


def _held(runtime: Runtime, finding: Any) -> list[HeldDecision]:
    store = runtime.store
    out: list[HeldDecision] = []
    waiting = store.list_runs(status=str(RunStatus.AWAITING_APPROVAL), limit=RECENT_HELD)
    for run in waiting:
        d = store.get_decision(run.decision_id)
        if d is not None:
            f = finding(d.finding_id)
            out.append(HeldDecision(decision=d, code="awaiting_approval", label=REASON_LABELS["awaiting_approval"],
                                    run_id=run.id, finding_summary=f.summary if f else ""))
    acts = store.list_decisions(outcome=str(Outcome.ACT), limit=RECENT_HELD)
    dry = [d for d in acts if d.dry_run]
    runs = {r.decision_id: r for r in store.runs_for_decisions([d.id for d in dry])}
    for d in dry:
        f = finding(d.finding_id)
        dry_run = runs.get(d.id)
        out.append(HeldDecision(decision=d, code="dry_run", label=REASON_LABELS["dry_run"],
                                run_id=dry_run.id if dry_run else None, finding_summary=f.summary if f else ""))
    for d in store.list_decisions(outcome=str(Outcome.SKIP), limit=RECENT_HELD):
        f = finding(d.finding_id)
        out.append(HeldDecision(decision=d, code=d.code, label=REASON_LABELS.get(d.code, d.code.replace("_", " ")),
                                run_id=None, finding_summary=f.summary if f else ""))
    out.sort(key=lambda h: h.decision.decided_at, reverse=True)
    return out[:RECENT_HELD]


def assess(now: datetime, daemon: DaemonInfo, sources: Sequence[SourceView], findings: Sequence[Finding],
           actions: Sequence[RunSummary], held: Sequence[HeldDecision],
           rules: Sequence[RuleView]) -> tuple[Level, list[Headline]]:
    """The overall state and the few sentences that say why, worst first."""
    lines: list[Headline] = []
    if daemon.draining:
        lines.append(Headline(level="bad", text="aiopsd is shutting down: no new webhooks or actions"))
    if daemon.config_error:
        lines.append(Headline(level="bad", text=f"last config reload rejected (old rules still run): "
                                                f"{daemon.config_error}"))
    for s in sources:
        if s.state == "down":
            lines.append(Headline(level="bad", text=f"source {s.name} is down: {s.error or 'not answering'}"
                                                    " — no actions are decided from its data"))
    for r in rules:
        if r.circuit.open:
            lines.append(Headline(level="bad", text=f"rule {r.name}: circuit open ({r.circuit.reason}); "
                                                    "it will not act until it resets"))
    failed = [a for a in actions if a.status in _FAILED and a.finished_at and now - a.finished_at < FAILED_HORIZON]
    if failed:
        names = ", ".join(f"#{a.id} {a.what}" for a in failed[:3])
        lines.append(Headline(level="bad", text=f"{len(failed)} action(s) failed in the last hour: {names}"))
    if daemon.dry_run:
        lines.append(Headline(level="warn", text="global dry run: actions run in check mode only"))
    firing = [f for f in findings if f.status == FindingStatus.FIRING]
    if firing:
        kinds = Counter(str(f.kind) for f in firing)
        by_kind = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        first = firing[0].summary or firing[0].source
        more = f" and {len(firing) - 1} more" if len(firing) > 1 else ""
        lines.append(Headline(level="warn", text=f"{len(firing)} finding(s) firing ({by_kind}): {first}{more}"))
    running = [a for a in actions if a.status in (RunStatus.RUNNING, RunStatus.PENDING)]
    if running:
        lines.append(Headline(level="warn", text=f"{len(running)} action(s) running or queued: "
                                                 + ", ".join(f"#{a.id} {a.what}" for a in running[:3])))
    waiting = [h for h in held if h.code == "awaiting_approval"]
    if waiting:
        lines.append(Headline(level="warn", text=f"{len(waiting)} action(s) awaiting approval: "
                                                 + ", ".join(f"#{h.run_id} {h.decision.rule}" for h in waiting[:3])))
    if not any(h.level == "bad" for h in lines):
        recent = [a for a in actions if a.finished_at and now - a.finished_at < FAILED_HORIZON]
        if recent:
            ok = sum(a.status == RunStatus.SUCCEEDED for a in recent)
            lines.append(Headline(level="ok", text=f"{ok} of {len(recent)} action(s) in the last hour succeeded"))
    if not lines:
        lines.append(Headline(level="ok", text="all quiet: no finding firing, no action running, sources up"))
    level: Level = "bad" if any(h.level == "bad" for h in lines) else (
        "warn" if any(h.level == "warn" for h in lines) else "ok")
    order = {"bad": 0, "warn": 1, "ok": 2}
    lines.sort(key=lambda h: order[h.level])
    return level, lines


def is_open(status: RunStatus) -> bool:
    return status in _OPEN
