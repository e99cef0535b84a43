"""Hostile label values in a ``verify: {check: {promql: ...}}`` query: data inside its string, never syntax.

Every corpus value (and PromQL-specific ones) is rendered into the rule's verify query through the
real engine: the decision acts with a query whose structure outside string literals is the
template's, and whose string holds exactly the value (escaped as PromQL escapes it).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aiopsd.engine import EngineState, Rule, evaluate
from aiopsd.engine.verify import skeleton
from aiopsd.models import Finding, FindingKind, Outcome
from tests.security.corpus import CORPUS

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TEMPLATE = 'up{instance="{{ labels.instance }}", job=~"{{ labels.job }}"} == 1'
PROMQL = [
    'x"} or vector(1) #',
    "x'} or vector(1)",
    'x\\"} or on() vector(1) or up{a="',
    "x`} or vector(1)",
    "x\n} or vector(1)",
    "\\",
    '"',
]
VALUES = sorted({p.value for p in CORPUS} | set(PROMQL))
RULE = Rule.model_validate(
    {
        "name": "r",
        "match": {"kind": "alert"},
        "action": {"log": {"message": "x"}},
        "verify": {"within": "5m", "check": {"promql": TEMPLATE}},
    }
)


def unquote(literal: str) -> str:
    """A double-quoted PromQL string's value (the Go escapes aiopsd writes)."""
    simple = {"\\": "\\", '"': '"', "'": "'", "`": "`", "n": "\n", "r": "\r", "t": "\t"}
    out, i = [], 0
    while i < len(literal):
        ch = literal[i]
        if ch == '"':
            raise AssertionError(f"an unescaped quote ends the string early: {literal!r}")
        if ch != "\\":
            out.append(ch)
            i += 1
        elif literal[i + 1] == "x":
            out.append(chr(int(literal[i + 2 : i + 4], 16)))
            i += 4
        else:
            out.append(simple[literal[i + 1]])
            i += 2
    return "".join(out)


@pytest.mark.parametrize("value", VALUES)
def test_a_hostile_label_stays_inside_its_promql_string(value: str) -> None:
    f = Finding(
        id="f",
        kind=FindingKind.ALERT,
        source="alertmanager",
        labels={"instance": value, "job": value},
        starts_at=NOW,
        last_seen=NOW,
    )
    [d] = evaluate([f], [RULE], EngineState(), NOW)
    assert d.outcome == Outcome.ACT and d.verify is not None
    query = d.verify["check"]["promql"]
    assert skeleton(query) == skeleton(TEMPLATE.replace("{{ labels.instance }}", "").replace("{{ labels.job }}", ""))
    inside = query.split('instance="', 1)[1].split('", job=~"', 1)[0]
    assert unquote(inside) == value
