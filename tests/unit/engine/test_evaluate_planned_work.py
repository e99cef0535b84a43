"""The engine skips for planned work: maintenance, silenced, silences unknown; after_maintenance act | drop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiopsd.engine import EngineState, evaluate
from aiopsd.engine.maintenance import MaintenanceWindow
from aiopsd.engine.rules import Rule
from aiopsd.engine.silences import Silence, SilenceMatcher
from aiopsd.models import Finding, FindingKind, Outcome

NOW = datetime(2026, 3, 4, 2, 30, tzinfo=UTC)
LATER = NOW + timedelta(hours=2)


def rule(**kw: Any) -> Rule:
    return Rule.model_validate(
        {
            "name": "restart",
            "match": {"kind": "alert", "labels": {"service": "api"}},
            "action": {"notify": {"message": "restart {{ labels.instance }}"}},
            **kw,
        }
    )


def finding(at: datetime = NOW) -> Finding:
    return Finding(
        id="f1",
        kind=FindingKind.ALERT,
        source="alertmanager",
        starts_at=NOW - timedelta(minutes=5),
        last_seen=at,
        labels={"service": "api", "instance": "web-1"},
    )


WINDOW = MaintenanceWindow(
    name="deploy",
    labels={"service": "api"},
    start=NOW - timedelta(minutes=30),
    end=NOW + timedelta(minutes=30),
    comment="release 4.2",
)
SILENCE = Silence(
    id="s-1",
    matchers=(SilenceMatcher(name="instance", value="web-.*", is_regex=True),),
    starts_at=NOW - timedelta(minutes=1),
    ends_at=NOW + timedelta(hours=1),
    created_by="alice",
    state="active",
)


def decide(r: Rule, state: EngineState, now: datetime = NOW) -> tuple[str, str]:
    (d,) = evaluate([finding(now)], [r], state, now)
    return d.code, d.reason


def test_a_maintenance_window_skips_with_its_name_end_and_comment() -> None:
    code, reason = decide(rule(), EngineState(maintenance=[WINDOW]))
    assert code == "maintenance"
    assert reason == "maintenance deploy until 2026-03-04 03:00:00Z: release 4.2"


def test_an_active_silence_skips_naming_the_silence() -> None:
    code, reason = decide(rule(), EngineState(silences=[SILENCE]))
    assert code == "silenced" and "silence s-1 by alice" in reason and 'instance=~"web-.*"' in reason


def test_silences_that_cannot_be_read_are_missing_data() -> None:
    code, reason = decide(rule(), EngineState(silences_down="Alertmanager silences unreadable: refused"))
    assert code == "silences_unknown" and "refused" in reason


def test_a_window_for_other_labels_does_not_stop_the_action() -> None:
    other = WINDOW.model_copy(update={"labels": {"service": "db"}})
    assert decide(rule(), EngineState(maintenance=[other]))[0] == "act"


def test_after_the_window_a_still_firing_finding_acts_by_default() -> None:
    decided = frozenset({("restart", "f1", "maintenance")})
    (d,) = evaluate(
        [finding(LATER)],
        [rule(guards={"stale_after": "1d"})],
        EngineState(maintenance=[WINDOW], decided=decided),
        LATER,
    )
    assert d.outcome == Outcome.ACT


def test_after_maintenance_drop_drops_a_finding_that_fired_during_the_window() -> None:
    r = rule(after_maintenance="drop", guards={"stale_after": "1d"})
    for code in ("maintenance", "silenced"):
        (d,) = evaluate([finding(LATER)], [r], EngineState(decided=frozenset({("restart", "f1", code)})), LATER)
        assert d.outcome == Outcome.SKIP and d.code == "dropped_after_maintenance"
    (d,) = evaluate([finding(LATER)], [r], EngineState(), LATER)
    assert d.outcome == Outcome.ACT  # never covered: drop does not apply


def test_the_skip_is_recorded_once() -> None:
    state = EngineState(maintenance=[WINDOW], decided=frozenset({("restart", "f1", "maintenance")}))
    assert evaluate([finding()], [rule()], state, NOW) == []
