"""engine/history.py: the guard state folded from plain history records, and the circuit rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiopsd.engine.history import fold, history_query, open_circuits, retention_floor
from aiopsd.engine.rules import RateBudget, Rule
from aiopsd.models import RESOLVED_WINDOW, DecisionRecord, History, Outcome, RunRecord, RunStatus

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def rule(name: str = "r", **guards: Any) -> Rule:
    return Rule.model_validate(
        {
            "name": name,
            "match": {"kind": "alert"},
            "action": {"playbook": "x.yml", "targets": "{{ labels.host }}"},
            "guards": guards,
        }
    )


def run(status: RunStatus, minutes_ago: float, rule_name: str = "r", dry_run: bool = False) -> RunRecord:
    return RunRecord(rule=rule_name, status=status, finished_at=NOW - timedelta(minutes=minutes_ago), dry_run=dry_run)


def act(
    minutes_ago: float,
    rule_name: str = "r",
    finding: str = "f",
    targets: tuple[str, ...] = ("h1",),
    code: str = "act",
    started: bool = True,
) -> DecisionRecord:
    return DecisionRecord(
        rule=rule_name,
        finding_id=finding,
        code=code,
        outcome=Outcome.ACT,
        targets=targets,
        decided_at=NOW - timedelta(minutes=minutes_ago),
        started=started,
    )


FAILED, OK = RunStatus.FAILED, RunStatus.SUCCEEDED
BREAKER: dict[str, Any] = {"circuit_breaker": {"failures": 2, "reset_after": "1h"}}


def test_circuit_opens_after_n_consecutive_failures_and_says_how_to_close_it() -> None:
    reason = open_circuits([rule(**BREAKER)], [run(FAILED, 5), run(RunStatus.TIMED_OUT, 10)], {}, NOW)["r"]
    assert reason.startswith("2 consecutive failed runs, last at 2026-01-01 11:55:00Z; closes 2026-01-01 12:55:00Z")
    assert "aiopsd circuit reset r" in reason


def test_circuit_stays_closed_on_a_success_dry_runs_a_reset_or_after_reset_after() -> None:
    r = [rule(**BREAKER)]
    assert open_circuits(r, [run(FAILED, 5), run(OK, 7), run(FAILED, 10)], {}, NOW) == {}
    assert open_circuits(r, [run(FAILED, 5), run(FAILED, 10, dry_run=True)], {}, NOW) == {}
    assert open_circuits(r, [run(FAILED, 5), run(FAILED, 10)], {"r": NOW - timedelta(minutes=7)}, NOW) == {}
    assert open_circuits(r, [run(FAILED, 61), run(FAILED, 62)], {}, NOW) == {}
    assert open_circuits(r, [run(FAILED, 5, rule_name="other"), run(FAILED, 10)], {}, NOW) == {}


def test_fold_keeps_what_each_guard_reads_within_its_look_back() -> None:
    rules = [rule(cooldown="30m"), rule("s", max_per_window={"count": 5, "window": "2h"})]
    history = History(
        decisions=[
            act(10, targets=("h1", "h2")),
            act(20, targets=("h1",)),
            act(200),  # r: the last is past every window
            act(90, rule_name="s", finding="g", targets=()),
            act(5, rule_name="gone", finding="x"),  # a rule no longer loaded: only the global budget counts it
            act(1, finding="held", started=False),
            DecisionRecord(
                rule="r", finding_id="f2", code="cooldown", outcome=Outcome.SKIP, targets=("h1",), decided_at=NOW
            ),
        ]
    )
    state = fold(history, rules, NOW, sources_down={"latency": "down"}, global_budget=RateBudget(count=9, window=600))
    assert state.last_action == {
        ("r", "h1"): NOW - timedelta(minutes=1),
        ("r", "h2"): NOW - timedelta(minutes=10),
        ("s", "*"): NOW - timedelta(minutes=90),
    }
    assert sorted(state.recent_actions) == ["r", "s"] and len(state.recent_actions["r"]) == 3
    assert sorted(state.global_recent) == [NOW - timedelta(minutes=m) for m in (10, 5, 1)]
    assert ("r", "f2", "cooldown") in state.decided and ("r", "f", "act") in state.decided
    assert ("r", "f") in state.started and ("r", "held") not in state.started
    assert state.sources_down == {"latency": "down"} and state.open_circuits == {}


def test_query_asks_the_store_for_exactly_what_the_fold_reads() -> None:
    rules = [rule(cooldown="30m", **BREAKER), rule("s", max_per_window={"count": 1, "window": "2h"})]
    q = history_query(rules, NOW, RateBudget(count=3, window=600))
    assert q.rules == ("r", "s") and q.circuit_depth == {"r": 2, "s": 3}
    assert q.acts_since == NOW - timedelta(hours=2) and q.global_since == NOW - timedelta(minutes=10)
    assert q.relevant_since == NOW - timedelta(seconds=RESOLVED_WINDOW)
    assert history_query(rules, NOW).global_since is None


def test_retention_floor_is_the_longest_look_back_of_any_guard() -> None:
    assert retention_floor([]) == RESOLVED_WINDOW
    assert retention_floor([rule(circuit_breaker={"failures": 1, "reset_after": "3d"})]) == 3 * 86400


def test_a_look_back_too_long_for_a_datetime_reads_the_whole_past() -> None:
    # What `max_per_window: {window: .inf}` was before load-time validation refused it (test_dispatch_isolation).
    r = rule()
    endless = [
        r.model_copy(
            update={
                "guards": r.guards.model_copy(
                    update={"max_per_window": RateBudget.model_construct(count=1, window=float("inf"))}
                )
            }
        )
    ]
    q = history_query(endless, NOW)
    assert q.acts_since.year == 1
    state = fold(History(decisions=[act(10**7)]), endless, NOW, sources_down={})
    assert state.last_action == {("r", "h1"): NOW - timedelta(minutes=10**7)}
