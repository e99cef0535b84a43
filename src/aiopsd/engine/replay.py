"""Replay timed findings through the engine offline (``aiopsd rules test``), no store, no daemon.

A :class:`Simulation` keeps in memory the history records the store keeps (decisions
taken, whether their action started, finished runs) and folds them with
:func:`aiopsd.engine.history.fold`, as the daemon does with the store's, so a fixture
replays the way the daemon would decide it. Actions are assumed to start at once and
finish at once, succeeding unless the fixture's ``runs`` says otherwise (so a rule's
circuit breaker can open), except those waiting for approval, which never start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
    RunRecord,
    RunStatus,
    SourceKind,
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

    def observe(self, finding: Finding) -> None:
        """Merge a sighting into the known finding (as the store does: :func:`aiopsd.models.merge_sighting`)."""
        old = self.findings.get(finding.id)
        merged = finding if old is None else merge_sighting(old, finding)
        if merged is not None:
            self.findings[finding.id] = merged

    def tick(self, now: datetime, sources_down: Mapping[str, str] | None = None) -> list[Decision]:
        state = fold(
            History(decisions=self.records, runs=self.runs),
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
                self.runs.append(
                    RunRecord(rule=d.rule, status=self.run_status(d.rule, now), finished_at=now, dry_run=d.dry_run)
                )
        self.decisions.extend(out)
        return out

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


def replay(rules: Sequence[Rule], fixture: FixtureFile) -> list[Decision]:
    """Every decision the engine takes over the fixture's timeline, in order."""
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
    for now in sorted(steps):
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
    return sim.decisions


def decision_rows(decisions: Sequence[Decision]) -> list[dict[str, Any]]:
    return [
        {
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
        for d in decisions
    ]
