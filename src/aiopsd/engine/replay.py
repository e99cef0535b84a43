"""Replay timed findings through the engine offline (``aiopsd rules test``), no store, no daemon.

A :class:`Simulation` keeps in memory the history records the store keeps (decisions
taken, whether their action started, finished runs) and folds them with
:func:`aiopsd.engine.history.fold`, as the daemon does with the store's, so a fixture
replays the way the daemon would decide it. Actions are assumed to start at once and
finish at once, succeeding unless the fixture's ``runs`` says otherwise (so a rule's
circuit breaker can open), except those waiting for approval, which never start.

Closed loop: a succeeded run of a rule with ``verify:`` gets its outcome ``after`` later
(``verified`` unless the fixture's ``runs`` entry says ``verification: not_verified`` or
``unknown``); the outcome is folded like the store's, so the replay shows the escalation
(``on_not_verified``), the ``not_verified_before`` skip and the demotion (acts that then
wait for approval). :func:`replay_rows` lists outcomes and demotions among the decisions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from aiopsd.engine.evaluate import evaluate
from aiopsd.engine.history import fold
from aiopsd.engine.rules import RateBudget, Rule
from aiopsd.errors import ConfigError
from aiopsd.models import (
    Decision,
    DecisionRecord,
    Finding,
    FindingKind,
    FindingStatus,
    Frozen,
    History,
    Outcome,
    OutcomeRecord,
    RunRecord,
    RunStatus,
    SourceKind,
    VerifyOutcome,
    merge_sighting,
    stable_id,
)
from aiopsd.yamlfile import read_yaml


class FindingEvent(Frozen):
    """A finding seen (or resolved) at ``at``; repeated ids are the same incident seen again."""

    at: datetime
    id: str | None = None
    kind: FindingKind = FindingKind.ALERT
    source: str = SourceKind.ALERTMANAGER
    labels: dict[str, str] = Field(default_factory=dict)
    score: float = 1.0
    status: FindingStatus = FindingStatus.FIRING
    # For a resolve: why (only "recovered" is a recovery that may trigger on_resolved).
    resolution: Literal["recovered", "no_data", "expired"] | None = None
    starts_at: datetime | None = None
    summary: str = ""

    def finding_id(self) -> str:
        return self.id or stable_id("fixture", str(self.kind), self.source, sorted(self.labels.items()))


class SourceDown(Frozen):
    source: str
    from_: datetime = Field(alias="from")
    until: datetime | None = None
    reason: str = "down in the fixture"


class RunResult(Frozen):
    """How the runs of ``rule`` decided in [from, until) end (the first entry that covers a run wins)."""

    rule: str
    status: Literal["succeeded", "failed", "timed_out"] = "failed"
    from_: datetime | None = Field(default=None, alias="from")
    until: datetime | None = None
    # How the verification of a succeeded run ends (rules with verify:).
    verification: Literal["verified", "not_verified", "unknown"] = "verified"

    def covers(self, rule: str, at: datetime) -> bool:
        return (
            rule == self.rule
            and (self.from_ is None or _utc(self.from_) <= at)
            and (self.until is None or at < _utc(self.until))
        )


class GlobalSettings(Frozen):
    dry_run: bool = False
    max_per_window: RateBudget | None = None


class FixtureFile(Frozen):
    findings: list[FindingEvent] = Field(default_factory=list)
    # Extra evaluation times (e.g. after a cooldown) besides each finding event's time.
    ticks: list[datetime] = Field(default_factory=list)
    sources_down: list[SourceDown] = Field(default_factory=list)
    # How action runs end (default: every run succeeds).
    runs: list[RunResult] = Field(default_factory=list)
    settings: GlobalSettings = GlobalSettings()


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass
class Simulation:
    """The engine's view of the past, kept in memory the way the store keeps it."""

    rules: Sequence[Rule]
    global_dry_run: bool = False
    global_budget: RateBudget | None = None
    run_results: Sequence[RunResult] = ()
    findings: dict[str, Finding] = field(default_factory=dict)
    # What the store would remember: every decision (and whether its action started), every finished run.
    records: list[DecisionRecord] = field(default_factory=list)
    runs: list[RunRecord] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    # Outcomes of verified runs (visible from their decided_at), and the rows replay_rows shows.
    outcomes: list[OutcomeRecord] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    run_ids: int = 0

    def observe(self, finding: Finding) -> None:
        """Merge a sighting into the known finding (as the store does: :func:`aiopsd.models.merge_sighting`)."""
        old = self.findings.get(finding.id)
        merged = finding if old is None else merge_sighting(old, finding)
        if merged is not None:
            self.findings[finding.id] = merged

    def tick(self, now: datetime, sources_down: Mapping[str, str] | None = None) -> list[Decision]:
        known = [o for o in self.outcomes if o.decided_at <= now]
        state = fold(
            History(decisions=self.records, runs=self.runs, outcomes=known),
            self.rules,
            now,
            sources_down=sources_down or {},
            global_dry_run=self.global_dry_run,
            global_budget=self.global_budget,
        )
        out = evaluate(list(self.findings.values()), self.rules, state, now)
        for d in out:
            started = d.outcome == Outcome.ACT and not d.require_approval
            self.records.append(
                DecisionRecord(
                    rule=d.rule,
                    finding_id=d.finding_id,
                    code=d.code,
                    outcome=d.outcome,
                    targets=d.targets,
                    decided_at=d.decided_at,
                    started=started,
                )
            )
            if started:
                status = self.run_status(d.rule, now)
                self.runs.append(RunRecord(rule=d.rule, status=status, finished_at=now, dry_run=d.dry_run))
                self.run_ids += 1
                if d.verify is not None and status == RunStatus.SUCCEEDED and not d.dry_run:
                    self.outcomes.append(self._outcome(d, now))
            self.rows.append(decision_row(d))
        self.decisions.extend(out)
        for name, why in state.demoted.items():
            if not any(r["code"] == "demoted" and r["rule"] == name for r in self.rows):
                self.rows.append(_row(now, name, "-", "demoted", "demoted", why))
        return out

    def _outcome(self, d: Decision, now: datetime) -> OutcomeRecord:
        assert d.verify is not None
        result = next((r.verification for r in self.run_results if r.covers(d.rule, now)), "verified")
        # Verified as soon as it is checked; otherwise decided when the window ends.
        wait = d.verify["after"] if result == "verified" else d.verify["within"]
        at = now + timedelta(seconds=float(wait))
        record = OutcomeRecord(
            rule=d.rule,
            finding_id=d.finding_id,
            run_id=self.run_ids,
            outcome=VerifyOutcome(result),
            decided_at=at,
            targets=d.targets,
            action=d.action,
        )
        self.rows.append(_row(at, d.rule, d.finding_id, result, "verification", f"run {self.run_ids}: {result}"))
        return record

    def pending_times(self, after: datetime) -> list[datetime]:
        """When outcomes decided later become visible (the replay ticks then too)."""
        return [o.decided_at for o in self.outcomes if o.decided_at > after]

    def run_status(self, rule: str, at: datetime) -> RunStatus:
        """How a run of ``rule`` started at ``at`` ends (the fixture's ``runs``, else it succeeds)."""
        return next((RunStatus(r.status) for r in self.run_results if r.covers(rule, at)), RunStatus.SUCCEEDED)


def load_fixture(path: Path) -> FixtureFile:
    label = str(path)
    raw = read_yaml(path, what="fixture file")
    if not isinstance(raw, dict):
        raise ConfigError("a fixture file is a mapping with a 'findings:' list", file=label)
    try:
        return FixtureFile.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(err["msg"], file=label, field=where or None) from None


def simulate(rules: Sequence[Rule], fixture: FixtureFile) -> Simulation:
    """Run the fixture's timeline through the engine (ticks at each event, extra tick and outcome)."""
    sim = Simulation(
        rules,
        global_dry_run=fixture.settings.dry_run,
        global_budget=fixture.settings.max_per_window,
        run_results=fixture.runs,
    )
    first_seen: dict[str, datetime] = {}
    steps: dict[datetime, list[FindingEvent]] = {}
    for ev in fixture.findings:
        steps.setdefault(_utc(ev.at), []).append(ev)
    for extra in fixture.ticks:
        steps.setdefault(_utc(extra), [])
    done: set[datetime] = set()
    while len(done) < len(steps):
        now = min(t for t in steps if t not in done)
        done.add(now)
        for ev in steps[now]:
            fid = ev.finding_id()
            starts = _utc(ev.starts_at) if ev.starts_at else first_seen.setdefault(fid, now)
            sim.observe(
                Finding(
                    id=fid,
                    kind=ev.kind,
                    source=ev.source,
                    labels=ev.labels,
                    score=ev.score,
                    status=ev.status,
                    starts_at=starts,
                    last_seen=now,
                    summary=ev.summary,
                    sightings=(now.timestamp(),),
                    resolution=ev.resolution if ev.status == FindingStatus.RESOLVED else None,
                )
            )
        down = {
            d.source: d.reason
            for d in fixture.sources_down
            if _utc(d.from_) <= now and (d.until is None or now < _utc(d.until))
        }
        sim.tick(now, down)
        for later in sim.pending_times(now):
            steps.setdefault(later, [])
    return sim


def replay(rules: Sequence[Rule], fixture: FixtureFile) -> list[Decision]:
    """Every decision the engine takes over the fixture's timeline, in order."""
    return simulate(rules, fixture).decisions


def replay_rows(rules: Sequence[Rule], fixture: FixtureFile) -> list[dict[str, Any]]:
    """The decisions, verification outcomes and demotions of the replay, in time order."""
    rows = simulate(rules, fixture).rows
    return sorted(rows, key=lambda r: r["at"])


def decision_row(d: Decision) -> dict[str, Any]:
    return {
        "at": d.decided_at.isoformat(),
        "rule": d.rule,
        "finding": d.finding_id,
        "outcome": str(d.outcome),
        "code": d.code,
        "targets": list(d.targets),
        "dry_run": d.dry_run,
        "require_approval": d.require_approval,
        "reason": d.reason,
    }


def _row(at: datetime, rule: str, finding: str, outcome: str, code: str, reason: str) -> dict[str, Any]:
    return {
        "at": at.isoformat(),
        "rule": rule,
        "finding": finding,
        "outcome": outcome,
        "code": code,
        "targets": [],
        "dry_run": False,
        "require_approval": False,
        "reason": reason,
    }


def decision_rows(decisions: Sequence[Decision]) -> list[dict[str, Any]]:
    return [decision_row(d) for d in decisions]
