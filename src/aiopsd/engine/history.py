"""Guard state folded from history: what the engine knows of the past, and the circuit rule.

:func:`fold` turns plain history records (decisions taken, whether their action started,
finished runs, circuit resets) into an :class:`EngineState`. It is pure: the daemon
feeds it what the store read for :func:`history_query` (:func:`engine_state` does both),
and ``aiopsd rules test`` feeds it a replay's memory (engine/replay.py), so both decide
from one rule of what counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from aiopsd.engine.evaluate import EngineState
from aiopsd.engine.rules import RateBudget, Rule
from aiopsd.engine.verify import demotions
from aiopsd.models import (
    RESOLVED_WINDOW,
    History,
    HistoryQuery,
    Outcome,
    OutcomeRecord,
    RunRecord,
    RunStatus,
    VerifyOutcome,
)

# A run that ended so counts as a failure for the circuit breaker.
FAILED = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT})
_DAWN = datetime.min.replace(tzinfo=UTC)


def _since(now: datetime, seconds: float) -> datetime:
    """``now - seconds``, or the start of time for a look-back too long to count (an infinite cooldown)."""
    try:
        return now - timedelta(seconds=seconds)
    except (OverflowError, ValueError):
        return _DAWN


class HistoryReader(Protocol):
    """Where the history comes from (the StateStore in the daemon)."""

    def history(self, query: HistoryQuery) -> History: ...


def _act_lookback(rules: Sequence[Rule]) -> float:
    """How far back the per-rule guards (cooldown, max_per_window) look at act decisions."""
    return max(
        [r.guards.cooldown for r in rules]
        + [r.guards.max_per_window.window for r in rules if r.guards.max_per_window]
        + [0.0]
    )


def history_query(rules: Sequence[Rule], now: datetime, global_budget: RateBudget | None = None) -> HistoryQuery:
    """The part of the past the rules' guards read at ``now``."""
    return HistoryQuery(
        rules=tuple(r.name for r in rules),
        relevant_since=_since(now, RESOLVED_WINDOW),
        acts_since=_since(now, _act_lookback(rules)),
        global_since=None if global_budget is None else _since(now, global_budget.window),
        circuit_depth={r.name: r.guards.circuit_breaker.failures for r in rules},
        outcome_depth={r.name: r.min_success.of_last for r in rules if r.min_success is not None},
    )


def retention_floor(rules: Sequence[Rule], global_budget: RateBudget | None = None) -> float:
    """The longest look-back of any guard (seconds): the store's retention is never shorter than this."""
    spans = [RESOLVED_WINDOW]
    for r in rules:
        g = r.guards
        spans += [g.cooldown, g.circuit_breaker.reset_after]
        if g.max_per_window is not None:
            spans.append(g.max_per_window.window)
    if global_budget is not None:
        spans.append(global_budget.window)
    return max(spans)


def open_circuits(
    rules: Sequence[Rule], runs: Sequence[RunRecord], resets: Mapping[str, datetime], now: datetime
) -> dict[str, str]:
    """rule -> why its circuit is open.

    A circuit opens after ``failures`` consecutive finished runs of the rule were failed or
    timed out (dry runs do not count, nor runs finished before an operator's reset), and
    closes ``reset_after`` after the last of them.
    """
    out: dict[str, str] = {}
    for rule in rules:
        cb = rule.guards.circuit_breaker
        reset = resets.get(rule.name)
        latest = sorted(
            (r for r in runs if r.rule == rule.name and not r.dry_run and (reset is None or r.finished_at > reset)),
            key=lambda r: r.finished_at,
            reverse=True,
        )[: cb.failures]
        if len(latest) < cb.failures or any(r.status not in FAILED for r in latest):
            continue
        last = latest[0].finished_at
        if (now - last).total_seconds() < cb.reset_after:
            closes = last + timedelta(seconds=cb.reset_after)
            out[rule.name] = (
                f"{cb.failures} consecutive failed runs, last at {last:%Y-%m-%d %H:%M:%S}Z; "
                f"closes {closes:%Y-%m-%d %H:%M:%S}Z or on `aiopsd circuit reset {rule.name}`"
            )
    return out


def fold(
    history: History,
    rules: Sequence[Rule],
    now: datetime,
    *,
    sources_down: Mapping[str, str],
    global_dry_run: bool = False,
    global_budget: RateBudget | None = None,
) -> EngineState:
    """The engine's view of the past at ``now``, from the records (pure)."""
    names = {r.name for r in rules}
    acts_since = _since(now, _act_lookback(rules))
    global_since = None if global_budget is None else _since(now, global_budget.window)
    decided: set[tuple[str, str, str]] = set()
    started: set[tuple[str, str]] = set()
    last_action: dict[tuple[str, str], datetime] = {}
    recent: dict[str, list[datetime]] = {}
    global_recent: list[datetime] = []
    for d in history.decisions:
        decided.add((d.rule, d.finding_id, d.code))
        if d.code == "act" and d.started:
            started.add((d.rule, d.finding_id))
        if d.outcome != Outcome.ACT:
            continue
        if global_since is not None and d.decided_at >= global_since:
            global_recent.append(d.decided_at)
        if d.rule in names and d.decided_at >= acts_since:
            recent.setdefault(d.rule, []).append(d.decided_at)
            for target in d.targets or ("*",):
                key = (d.rule, target)
                if key not in last_action or last_action[key] < d.decided_at:
                    last_action[key] = d.decided_at
    not_verified: dict[tuple[str, str], OutcomeRecord] = {}
    for o in history.outcomes:
        if o.outcome == VerifyOutcome.NOT_VERIFIED and o.rule in names:
            not_verified.setdefault((o.rule, o.finding_id), o)
    return EngineState(
        decided=frozenset(decided),
        last_action=last_action,
        recent_actions=recent,
        open_circuits=open_circuits(rules, history.runs, history.circuit_resets, now),
        sources_down=dict(sources_down),
        global_dry_run=global_dry_run,
        global_budget=global_budget,
        global_recent=global_recent,
        started=frozenset(started),
        not_verified=not_verified,
        demoted=demotions(rules, history.outcomes, history.restores),
    )


def engine_state(
    reader: HistoryReader,
    rules: Sequence[Rule],
    now: datetime,
    *,
    sources_down: Mapping[str, str],
    global_dry_run: bool = False,
    global_budget: RateBudget | None = None,
) -> EngineState:
    """Read the rules' history from ``reader`` and fold it (what the daemon does every tick)."""
    history = reader.history(history_query(rules, now, global_budget))
    return fold(
        history, rules, now, sources_down=sources_down, global_dry_run=global_dry_run, global_budget=global_budget
    )
