"""What the status page, the JSON API and ``aiopsd status`` show: frozen view models, no I/O.

One model per thing shown: the page (``GET /``), ``/api/v1/overview`` and its
parts (``/rules``, ``/sources``, ``/models``), ``/api/v1/status`` and the
terminal all render these, so they never disagree. :mod:`.overview` builds them
from the store.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from aiopsd.models import Decision, Finding, Frozen, RunStatus, SourceKind, Verification, VerifyOutcome

Level = Literal["ok", "warn", "bad"]


class View(Frozen):
    """Frozen, and unlike the stage models it ignores unknown fields: ``aiopsd status`` parses
    the JSON of a daemon that may be newer than itself."""

    model_config = ConfigDict(extra="ignore")


class Headline(View):
    level: Level
    text: str


class DaemonInfo(View):
    version: str
    replica: str
    started_at: datetime
    uptime_seconds: float
    ready: bool
    draining: bool
    dry_run: bool = Field(description="Global dry run: every action runs in check mode")
    config_error: str = Field(description="Why the last reload was rejected (empty when it succeeded)")


class SourceView(View):
    name: str
    kind: str = Field(description=", ".join(SourceKind))
    state: Literal["up", "down", "waiting"] = Field(description="waiting: configured but not polled yet")
    up: bool = Field(description="state is up")
    configured: bool = Field(description="Part of the running configuration")
    detail: str = Field(description="The PromQL query or the log path")
    last_ok: datetime | None
    last_error_at: datetime | None
    error: str
    lag_seconds: float | None = Field(description="Age of the newest sample at the last poll")
    updated_at: datetime | None
    cursor: dict[str, Any] = Field(
        default_factory=dict, description="Where reading resumes: Prometheus watermark or log offsets"
    )


class RunSummary(View):
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
    verification: Verification | None = Field(
        default=None,
        description="Did it fix the problem (rules with verify:): pending, verified, not_verified, unknown",
    )


class FindingView(View):
    finding: Finding
    decisions: list[Decision]
    runs: list[RunSummary]


class HeldDecision(View):
    """A decision that did not (yet) change anything, and why."""

    decision: Decision
    code: str = Field(description="cooldown, circuit_open, rate_budget, awaiting_approval, dry_run, ...")
    label: str
    run_id: int | None = Field(description="The held run (awaiting approval, dry run)")
    finding_summary: str


class CircuitState(View):
    open: bool
    reason: str


class RuleHealth(View):
    """A rule's closed loop: what it verifies, its latest outcomes, and whether it lost its autonomy."""

    verify: str = Field(description="What its verify: checks")
    outcomes: list[VerifyOutcome] = Field(description="Latest decided outcomes, newest first")
    verified: int = Field(description="Verified among the outcomes min_success reads (or all shown)")
    judged: int = Field(description="Verified or not_verified among them (unknown does not count)")
    success_rate: float | None = Field(description="verified / judged, None before any")
    min_success: str | None = Field(description="e.g. 2 of the last 3")
    demoted: bool = Field(description="Put in require_approval mode by min_success")
    demoted_reason: str
    restored_at: datetime | None = Field(description="When an operator last restored it")


class RuleView(View):
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
    health: RuleHealth | None = Field(default=None, description="Rules with verify: only")


class ModelVersionView(View):
    version: str
    current: bool
    created_at: datetime | None
    metrics: dict[str, float | int | str | bool | None]


class ModelView(View):
    name: str
    path: str
    current: str | None
    versions: list[ModelVersionView]


class DriftFindingRef(View):
    id: str
    summary: str
    labels: dict[str, str]


class PerformanceView(View):
    """A monitored model's estimated and realised performance, beside its firing drift findings."""

    model: str
    metric: str
    estimate: float | None = Field(default=None, description="Latest estimate (CBPE/DLE) on a window without labels")
    realised: float | None = Field(default=None, description="Realised metric of the latest window of labelled rows")
    estimation_error: float | None = Field(default=None, description="Estimate minus realised, on the same rows")
    drift_findings: list[DriftFindingRef] = Field(default_factory=list)


class Counts(View):
    alerts: int
    findings: dict[str, int]
    decisions: dict[str, int]
    runs: dict[str, int]


class Overview(View):
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
    performance: list[PerformanceView] = Field(default_factory=list)
    lifecycle: list[LifecycleView] = Field(default_factory=list)
    counts: Counts


class Status(DaemonInfo):
    """``/api/v1/status``: the daemon's facts with the page's own source, rule and count views."""

    restart_needed: list[str] = Field(description="Settings changed by a reload that take effect only after a restart")
    leader: bool = Field(description="With several replicas on PostgreSQL: whether this one holds the leader lease")
    sources: list[SourceView] = Field(description="Sources polled at least once (not the waiting ones)")
    rules: list[RuleView]
    counts: Counts


class ComparisonView(View):
    """Champion vs challenger on the same labelled rows; ``advantage`` is the challenger's (metric units)."""

    metric: str
    rows: int
    champion: float | None
    challenger: float | None
    advantage: float | None
    low: float | None
    high: float | None
    confidence: float
    min_improvement: float


class RegressionWatchView(View):
    """After a promotion: the champion's realised metric against the previous version's."""

    previous: int | None
    baseline: float | None
    rows: int | None = None
    value: float | None = None
    margin: float
    outcome: str
    reason: str | None = None


class LifecycleView(View):
    """One model's champion/challenger card (both model-store backends)."""

    model: str
    store: str
    backend: str
    champion: int | None
    challenger: int | None = Field(
        default=None, description="The version the card is about: in shadow, or the last decided"
    )
    challenger_status: str | None = None
    previous: int | None = Field(default=None, description="The champion the challenger was compared with")
    state: str = Field(description="shadow, promoting, watching, watched, approved, rejected, rolled_back, ...")
    span: str | None = None
    comparison: ComparisonView | None = None
    decision: dict[str, str | None] | None = None
    watch: RegressionWatchView | None = None
    error: str | None = None
