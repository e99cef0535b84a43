"""verify: / min_success as data: load-time errors, the PromQL check rendered as data, the demotion fold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aiopsd.engine import Rule, load_rules
from aiopsd.engine.verify import MinSuccess, UnsafeQuery, Verify, demotion, demotions, plan, skeleton
from aiopsd.errors import ConfigError
from aiopsd.models import OutcomeRecord, VerifyOutcome

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rule(**kw: Any) -> Rule:
    base: dict[str, Any] = {"name": "r", "match": {"kind": "alert"}, "action": {"notify": {"message": "x"}}}
    return Rule.model_validate({**base, **kw})


def write(tmp_path: Path, body: str) -> Path:
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    (d / "loop.yaml").write_text(body)
    return d


@pytest.mark.parametrize(
    ("verify", "field", "words"),
    [
        ("{after: 10m, within: 5m}", "verify", "within (5m) must be longer than after (10m)"),
        ("{within: 10m, check: sometimes}", "verify.check", "check is one of: resolved, {promql"),
        ("{within: 10m, check: {promql: 'up > {{ labels.x }}'}}", "verify.check", "outside a quoted string"),
        (
            "{within: 10m, check: {score_below: {points: 0}}}",
            "verify.check.score_below.points",
            "greater than or equal to 1",
        ),
        ("{within: nope}", "verify.within", "invalid duration"),
    ],
)
def test_bad_verify_names_file_rule_and_field(tmp_path: Path, verify: str, field: str, words: str) -> None:
    d = write(
        tmp_path,
        f"rules:\n  - name: fix-api\n    match: {{kind: alert}}\n    action: {{notify: {{message: hi}}}}\n"
        f"    verify: {verify}\n",
    )
    with pytest.raises(ConfigError) as info:
        load_rules(d)
    text = str(info.value)
    assert "loop.yaml" in text and "fix-api" in text and field in text and words in text


def test_on_not_verified_and_min_success_need_verify(tmp_path: Path) -> None:
    d = write(
        tmp_path,
        "rules:\n  - name: fix-api\n    match: {kind: alert}\n    action: {notify: {message: hi}}\n"
        "    min_success: {of_last: 3, verified: 2}\n",
    )
    with pytest.raises(ConfigError, match="min_success needs a verify"):
        load_rules(d)
    with pytest.raises(ValueError, match="cannot be more than of_last"):
        MinSuccess(of_last=2, verified=3)


def test_on_not_verified_action_errors_name_the_field(tmp_path: Path) -> None:
    d = write(
        tmp_path,
        "rules:\n  - name: fix-api\n    match: {kind: alert}\n    action: {notify: {message: hi}}\n"
        "    verify: {within: 10m}\n    on_not_verified: {notify: {message: hi, channel: nowhere}}\n",
    )
    with pytest.raises(ConfigError) as info:
        load_rules(d, channels=["oncall"])
    assert "on_not_verified.notify.channel" in str(info.value)


def test_a_full_closed_loop_rule_loads() -> None:
    r = rule(
        verify={"after": "2m", "within": "10m", "check": {"promql": 'up{instance="{{ labels.instance }}"} == 1'}},
        on_not_verified={"playbook": "rollback.yml", "targets": "{{ labels.instance }}"},
        min_success={"of_last": 3, "verified": 2},
    )
    assert r.verify is not None and (r.verify.after, r.verify.within) == (120.0, 600.0)
    assert r.verify.check != "resolved"


HOSTILE = [
    'x"} or vector(1) or up{a="',
    "x'} or vector(1) #",
    "a\\",
    'a\\"} or vector(1) #',
    "line\nbreak",
    "`raw`",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_label_value_never_changes_the_query_structure(value: str) -> None:
    v = Verify.model_validate({"within": "5m", "check": {"promql": 'up{instance="{{ labels.instance }}"} == 1'}})
    rendered = plan(v, {"labels": {"instance": value}})["check"]["promql"]
    assert skeleton(rendered) == skeleton('up{instance="x"} == 1')
    assert "\n" not in rendered


def test_a_value_outside_quotes_is_refused_at_render_time() -> None:
    # A template that only puts a value outside quotes under some condition passes the load check.
    v = Verify.model_validate(
        {
            "within": "5m",
            "check": {"promql": "up{% if labels.get('k') == 'evil' %} or {{ labels.k }}{% endif %} == 1"},
        }
    )
    assert plan(v, {"labels": {"k": "fine"}})["check"]["promql"] == "up == 1"
    with pytest.raises(UnsafeQuery):
        plan(v, {"labels": {"k": "evil"}})


def test_skeleton_drops_string_contents_and_keeps_structure() -> None:
    assert skeleton('a{b="x\\"y", c=\'z\'} + `r`') == "a{b=\"\", c=''} + ``"


def outcome(n: int, what: VerifyOutcome, rule_name: str = "r") -> OutcomeRecord:
    return OutcomeRecord(
        rule=rule_name, finding_id=f"f{n}", run_id=n, outcome=what, decided_at=T0 + timedelta(minutes=n)
    )


V, N, U = VerifyOutcome.VERIFIED, VerifyOutcome.NOT_VERIFIED, VerifyOutcome.UNKNOWN


@pytest.mark.parametrize(
    ("history", "demoted"),
    [
        ([], False),
        ([N], False),
        ([N, N], True),  # 2 of the last 3 can no longer be verified
        ([N, V, N], True),
        ([N, N, V, V], False),  # the last 3 are V, V, N: 2 verified
        ([N, U, U, V], False),  # unknown never counts either way
        ([N, U, N], True),
    ],
)
def test_min_success_two_of_the_last_three(history: list[VerifyOutcome], demoted: bool) -> None:
    r = rule(verify={"within": "5m"}, min_success={"of_last": 3, "verified": 2})
    outcomes = [outcome(i, o) for i, o in enumerate(history)]
    got = demotions([r], outcomes, {})
    assert ("r" in got) is demoted
    if demoted:
        assert "aiopsd rules restore r" in got["r"]


def test_a_restore_forgets_the_outcomes_before_it() -> None:
    r = rule(verify={"within": "5m"}, min_success={"of_last": 3, "verified": 2})
    outcomes = [outcome(0, N), outcome(1, N)]
    assert "r" in demotions([r], outcomes, {})
    assert demotions([r], outcomes, {"r": T0 + timedelta(minutes=1, seconds=30)}) == {}
    assert "r" in demotions(
        [r], [*outcomes, outcome(2, N), outcome(3, N)], {"r": T0 + timedelta(minutes=1, seconds=30)}
    )


def test_demotion_text_says_the_figures() -> None:
    why = demotion(MinSuccess(of_last=3, verified=2), [outcome(1, N), outcome(0, N)])
    assert why is not None and "2 of its last 2" in why and "min_success 2 of the last 3" in why
