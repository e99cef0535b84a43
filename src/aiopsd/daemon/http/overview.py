"""Builders: the store, the running rule set and the model directories -> the views of :mod:`.views`.

The status page (``GET /``), the JSON API (``/api/v1/overview``, ``/rules``,
``/sources``, ``/models``, ``/status``) and ``aiopsd status`` all render what
these build, so they never disagree. Building only reads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from aiopsd import __version__
from aiopsd.daemon.http.health import rule_health
from aiopsd.daemon.http.lifecycle import cards as lifecycle_cards
from aiopsd.daemon.http.model_dirs import models
from aiopsd.daemon.http.performance import performance
from aiopsd.daemon.http.views import (
    CircuitState,
    Counts,
    DaemonInfo,
    FindingView,
    Headline,
    HeldDecision,
    Level,
    Overview,
    RuleView,
    RunSummary,
    SourceView,
    Status,
)
from aiopsd.daemon.runtime import Runtime
from aiopsd.durations import format_duration
from aiopsd.engine.actions import ACTIONS
from aiopsd.engine.history import engine_state
from aiopsd.engine.rules import Rule
from aiopsd.models import (
    ActionRun,
    Decision,
    Finding,
    FindingKind,
    FindingStatus,
    Outcome,
    RunStatus,
    SkipReason,
    SourceKind,
)

RECENT_ACTIONS = 20
RECENT_HELD = 30
RECENT_RESOLVED = 8
RESOLVED_HORIZON = timedelta(hours=24)
FAILED_HORIZON = timedelta(hours=1)

# What each reason code means to a person: every skip reason's own label, and the two held states.
REASON_LABELS: dict[str, str] = {
    **{str(reason): reason.label for reason in SkipReason},
    "awaiting_approval": "awaiting approval",
    "dry_run": "dry run",
}

_FAILED = {RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.INTERRUPTED}

FindingLookup = Callable[[str | None], Finding | None]


def run_what(run: ActionRun | Decision) -> str:
    kind = run.kind if isinstance(run, ActionRun) else (run.action_kind or "")
    spec = ACTIONS.get(kind)
    return spec.describe_run(run.action) if spec is not None else kind or "action"


def summarize_run(run: ActionRun, decision: Decision | None, finding: Finding | None) -> RunSummary:
    duration = None
    if run.started_at is not None:
        end = run.finished_at or datetime.now(UTC)
        duration = max(0.0, (end - run.started_at).total_seconds())
    return RunSummary(
        id=run.id,
        rule=run.rule,
        kind=run.kind,
        what=run_what(run),
        targets=list(run.targets),
        status=run.status,
        attempt=run.attempt,
        dry_run=run.dry_run,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        duration_seconds=duration,
        rc=run.rc,
        error=run.error,
        decision_id=run.decision_id,
        reason=decision.reason if decision else "",
        finding_id=decision.finding_id if decision else None,
        verification=run.verification,
        finding_summary=finding.summary if finding else "",
    )


def sources(runtime: Runtime) -> list[SourceView]:
    store, settings = runtime.store, runtime.settings
    stored = {s["name"]: s for s in store.list_sources()}
    cursors = store.list_cursors()
    details = {w.name: w.query for w in settings.watches}
    kinds = {w.name: SourceKind.PROMETHEUS for w in settings.watches}
    out: list[SourceView] = []
    for name in sorted(set(stored) | set(details)):
        row = stored.get(name)
        kind = row["kind"] if row else kinds[name]
        cursor: dict[str, Any] = {}
        for cname, value in cursors.items():
            if cname == f"{kind}:{name}" or cname.startswith(f"{kind}:{name}:"):
                cursor.update(value if cname == f"{kind}:{name}" else {cname.split(":", 2)[2]: value})
        state: Literal["up", "down", "waiting"] = "waiting" if row is None else ("up" if row["up"] else "down")
        out.append(
            SourceView(
                name=name,
                kind=kind,
                state=state,
                up=state == "up",
                configured=name in details or kind != SourceKind.PROMETHEUS,
                detail=details.get(name, ""),
                last_ok=row["last_ok"] if row else None,
                last_error_at=row["last_error_at"] if row else None,
                error=row["error"] if row else "",
                lag_seconds=row["lag_seconds"] if row else None,
                updated_at=row["updated_at"] if row else None,
                cursor=cursor,
            )
        )
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
        out.append(
            RuleView(
                name=r.name,
                description=r.description,
                enabled=r.enabled,
                action=r.action.kind,
                what=_rule_what(r),
                match=_match_text(r),
                cooldown_seconds=g.cooldown,
                cooling_down_until=until if until is not None and until > now else None,
                max_per_window=budget,
                actions_in_window=used,
                require_approval=g.require_approval,
                dry_run=g.dry_run,
                circuit=CircuitState(open=bool(reason), reason=reason),
                last_action_at=last,
                health=rule_health(runtime.store, r, state),
            )
        )
    return out


def _rule_what(rule: Rule) -> str:
    return rule.action.describe()


def _match_text(rule: Rule) -> str:
    m = rule.match
    parts = [str(m.kind) if m.kind else "any finding"]
    if m.source:
        parts.append(f"source={m.source}")
    parts += [f"{k}={v}" for k, v in sorted(m.labels.items())]
    if m.min_score is not None:
        parts.append(f"score>={m.min_score:g}")
    return " ".join(parts)


def finding_views(runtime: Runtime, findings: Sequence[Finding]) -> list[FindingView]:
    store = runtime.store
    out: list[FindingView] = []
    for f in findings:
        decisions = store.list_decisions(finding_id=f.id, limit=100)
        runs = store.runs_for_decisions([d.id for d in decisions])
        by_id = {d.id: d for d in decisions}
        out.append(
            FindingView(
                finding=f, decisions=decisions, runs=[summarize_run(r, by_id.get(r.decision_id), f) for r in runs]
            )
        )
    return out


def daemon_info(runtime: Runtime, now: datetime) -> DaemonInfo:
    return DaemonInfo(
        version=__version__,
        replica=runtime.replica,
        started_at=datetime.fromtimestamp(runtime.started_at, UTC),
        uptime_seconds=max(0.0, now.timestamp() - runtime.started_at),
        ready=runtime.ready.is_set(),
        draining=runtime.draining.is_set(),
        dry_run=runtime.settings.actions.dry_run,
        config_error=runtime.last_reload_error,
    )


def counts(runtime: Runtime) -> Counts:
    c = runtime.store.counts()
    return Counts(
        alerts=int(c["alerts"]), findings=dict(c["findings"]), decisions=dict(c["decisions"]), runs=dict(c["runs"])
    )


def status(runtime: Runtime, now: datetime | None = None) -> Status:
    """``/api/v1/status``: the daemon, the sources polled at least once, the running rules, the counts."""
    now = now or datetime.now(UTC)
    return Status(
        **daemon_info(runtime, now).model_dump(),
        restart_needed=list(runtime.restart_needed),
        leader=runtime.is_leader(),
        sources=[s for s in sources(runtime) if s.state != "waiting"],
        rules=rules(runtime, now),
        counts=counts(runtime),
    )


def build(runtime: Runtime, now: datetime | None = None) -> Overview:
    now = now or datetime.now(UTC)
    store = runtime.store
    firing = store.list_findings(status=str(FindingStatus.FIRING), limit=50)
    # Findings with a chart or drifted columns first: they carry the most evidence.
    firing.sort(key=lambda f: f.kind == FindingKind.ALERT)
    resolved = [
        f
        for f in store.list_findings(status=str(FindingStatus.RESOLVED), limit=RECENT_RESOLVED)
        if now - f.last_seen < RESOLVED_HORIZON
    ]
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
    daemon = daemon_info(runtime, now)
    state, headline = assess(now, daemon, source_views, [fv.finding for fv in findings], actions, held, rule_views)
    return Overview(
        generated_at=now,
        state=state,
        headline=headline,
        daemon=daemon,
        sources=source_views,
        findings=findings,
        actions=actions,
        held=held,
        rules=rule_views,
        models=models(runtime),
        performance=performance(runtime, [fv.finding for fv in findings]),
        lifecycle=lifecycle_cards(runtime),
        counts=counts(runtime),
    )


def _held(runtime: Runtime, finding: FindingLookup) -> list[HeldDecision]:
    store = runtime.store

    def held(d: Decision, code: str, run_id: int | None) -> HeldDecision:
        f = finding(d.finding_id)
        label = REASON_LABELS.get(code, code.replace("_", " "))
        return HeldDecision(decision=d, code=code, label=label, run_id=run_id, finding_summary=f.summary if f else "")

    out: list[HeldDecision] = []
    for run in store.list_runs(status=str(RunStatus.AWAITING_APPROVAL), limit=RECENT_HELD):
        d = store.get_decision(run.decision_id)
        if d is not None:
            out.append(held(d, "awaiting_approval", run.id))
    dry = [d for d in store.list_decisions(outcome=str(Outcome.ACT), limit=RECENT_HELD) if d.dry_run]
    runs = {r.decision_id: r for r in store.runs_for_decisions([d.id for d in dry])}
    for d in dry:
        dry_run = runs.get(d.id)
        out.append(held(d, "dry_run", dry_run.id if dry_run else None))
    out.extend(held(d, d.code, None) for d in store.list_decisions(outcome=str(Outcome.SKIP), limit=RECENT_HELD))
    out.sort(key=lambda h: h.decision.decided_at, reverse=True)
    return out[:RECENT_HELD]


def assess(
    now: datetime,
    daemon: DaemonInfo,
    sources: Sequence[SourceView],
    findings: Sequence[Finding],
    actions: Sequence[RunSummary],
    held: Sequence[HeldDecision],
    rules: Sequence[RuleView],
) -> tuple[Level, list[Headline]]:
    """The overall state and the few sentences that say why, worst first."""
    lines: list[Headline] = []
    if daemon.draining:
        lines.append(Headline(level="bad", text="aiopsd is shutting down: no new webhooks or actions"))
    if daemon.config_error:
        lines.append(
            Headline(level="bad", text=f"last config reload rejected (old rules still run): {daemon.config_error}")
        )
    for s in sources:
        if s.state == "down":
            lines.append(
                Headline(
                    level="bad",
                    text=f"source {s.name} is down: {s.error or 'not answering'}"
                    " — no actions are decided from its data",
                )
            )
    for r in rules:
        if r.circuit.open:
            lines.append(
                Headline(
                    level="bad",
                    text=f"rule {r.name}: circuit open ({r.circuit.reason}); it will not act until it resets",
                )
            )
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
        lines.append(
            Headline(
                level="warn",
                text=f"{len(running)} action(s) running or queued: "
                + ", ".join(f"#{a.id} {a.what}" for a in running[:3]),
            )
        )
    waiting = [h for h in held if h.code == "awaiting_approval"]
    if waiting:
        lines.append(
            Headline(
                level="warn",
                text=f"{len(waiting)} action(s) awaiting approval: "
                + ", ".join(f"#{h.run_id} {h.decision.rule}" for h in waiting[:3]),
            )
        )
    if not any(h.level == "bad" for h in lines):
        recent = [a for a in actions if a.finished_at and now - a.finished_at < FAILED_HORIZON]
        if recent:
            ok = sum(a.status == RunStatus.SUCCEEDED for a in recent)
            lines.append(Headline(level="ok", text=f"{ok} of {len(recent)} action(s) in the last hour succeeded"))
    if not lines:
        lines.append(Headline(level="ok", text="all quiet: no finding firing, no action running, sources up"))
    level: Level = (
        "bad" if any(h.level == "bad" for h in lines) else ("warn" if any(h.level == "warn" for h in lines) else "ok")
    )
    order = {"bad": 0, "warn": 1, "ok": 2}
    lines.sort(key=lambda h: order[h.level])
    return level, lines
