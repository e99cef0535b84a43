"""Closed loop, as data: a rule's ``verify:`` check, its ``min_success``, and the pure rules around them.

- :class:`Verify` is what a rule says (``after``, ``within``, ``check``); :func:`plan` renders it
  once for a finding into the plan stored with the run (the daemon's verifier runs it).
- A ``promql`` check renders label values as data: every value is escaped as the inside of a
  PromQL string literal, and the rendered expression must have the same structure outside
  string literals as the template rendered with a harmless probe value. A label that would
  change the query (``x"} or vector(1) #``) is refused (:class:`UnsafeQuery`), never run.
- :func:`demotions` folds a rule's latest outcomes into "demoted, and why" (``min_success``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, Tag, field_validator, model_validator

from aiopsd.durations import Duration, PositiveDuration, format_duration
from aiopsd.engine.templating import check_template, render
from aiopsd.models import Frozen, OutcomeRecord, VerifyOutcome


class UnsafeQuery(ValueError):
    """A label value would change the structure of a verify query."""


class PromqlCheck(Frozen):
    """Holds when the instant query returns at least one sample and every value is > 0."""

    promql: str = Field(min_length=1)

    @field_validator("promql")
    @classmethod
    def _template(cls, value: str) -> str:
        check_template(value)
        # Load-time shape check: a value that would sit outside quotes changes the skeleton.
        hostile = escape_value('x" or y{z')
        _same_shape(value, {k: _Probe(hostile) for k in _DICTS} | {k: hostile for k in _SCALARS})
        return value


class ScoreBelowParams(Frozen):
    points: int = Field(ge=1, le=1000)


class ScoreBelowCheck(Frozen):
    """Holds when the same series' anomaly score stayed below 1 for ``points`` consecutive new points."""

    score_below: ScoreBelowParams


CHECK_KINDS = ("resolved", "promql", "score_below")


def _check_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "resolved" if value == "resolved" else None
    if isinstance(value, BaseModel):
        return "promql" if isinstance(value, PromqlCheck) else "score_below"
    if isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        return key if key in ("promql", "score_below") else None
    return None


Check = Annotated[
    Annotated[Literal["resolved"], Tag("resolved")]
    | Annotated[PromqlCheck, Tag("promql")]
    | Annotated[ScoreBelowCheck, Tag("score_below")],
    Discriminator(
        _check_kind,
        custom_error_type="verify_check",
        custom_error_message="check is one of: resolved, {promql: '<expr>'}, {score_below: {points: N}}",
    ),
]


class Verify(Frozen):
    """Wait ``after`` once the run succeeded, then check until ``within`` (both counted from the run's end)."""

    after: Duration = 0.0
    within: PositiveDuration
    check: Check = "resolved"

    @model_validator(mode="after")
    def _window(self) -> Verify:
        if self.within <= self.after:
            raise ValueError(
                f"within ({format_duration(self.within)}) must be longer than after ({format_duration(self.after)})"
            )
        return self

    def describe(self) -> str:
        check = self.check
        what = (
            "the finding resolved"
            if check == "resolved"
            else f"promql {check.promql}"
            if isinstance(check, PromqlCheck)
            else f"score below 1 for {check.score_below.points} points"
        )
        return f"{what}, from {format_duration(self.after)} to {format_duration(self.within)} after the run"


class MinSuccess(Frozen):
    """Demote the rule to require_approval when fewer than ``verified`` of its last ``of_last``
    verified/not_verified outcomes can be verified (``unknown`` outcomes do not count)."""

    of_last: int = Field(ge=1, le=100)
    verified: int = Field(ge=1)

    @model_validator(mode="after")
    def _fits(self) -> MinSuccess:
        if self.verified > self.of_last:
            raise ValueError(f"verified ({self.verified}) cannot be more than of_last ({self.of_last})")
        return self


class _Probe(dict[str, Any]):
    """A mapping where every key is one probe value (the structure check of a template)."""

    def __init__(self, value: str = "probe") -> None:
        super().__init__()
        self.value = value

    def __missing__(self, key: str) -> str:
        return self.value


# The template context's names (engine/state.py template_context): mappings and plain values.
_DICTS = ("labels", "finding")
_SCALARS = ("kind", "source", "score")


# ---- PromQL: the structure of an expression outside its string literals ----
def skeleton(expr: str) -> str:
    """``expr`` with the contents of every string literal (``"..."``, ``'...'``, `` `...` ``) removed."""
    out: list[str] = []
    i, n = 0, len(expr)
    while i < n:
        ch = expr[i]
        if ch in "\"'`":
            out.append(ch + ch)
            i += 1
            while i < n and expr[i] != ch:
                i += 2 if ch != "`" and expr[i] == "\\" else 1
            i += 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)


# Quotes as hex escapes: valid in both quote styles (Go rejects \\' inside "..." and \\" inside '...').
_ESCAPES = {"\\": "\\\\", '"': "\\x22", "'": "\\x27", "`": "\\x60", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_value(value: str) -> str:
    """A string's inside of a double- or single-quoted PromQL literal (Go escapes; control characters
    as ``\\xHH``), so nothing in it can end the literal or reach the query raw."""
    return "".join(
        _ESCAPES.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch) for ch in value
    )


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return escape_value(value)
    if isinstance(value, dict):
        return {k: _escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    return value


def _same_shape(template: str, context: Mapping[str, Any]) -> str:
    """``template`` rendered with ``context``, if its skeleton is the one of a harmless probe rendering."""
    probe = {k: _Probe() for k in _DICTS} | {k: "probe" for k in _SCALARS}
    rendered = str(render(template, dict(context)))
    if skeleton(rendered) != skeleton(str(render(template, probe))):
        raise UnsafeQuery(
            "a template value ends up outside a quoted string in the verify query (put every "
            '{{ ... }} inside quotes, e.g. up{instance="{{ labels.instance }}"})'
        )
    return rendered


def _render_promql(template: str, context: Mapping[str, Any]) -> str:
    return _same_shape(template, {k: _escaped(v) for k, v in context.items()})


def plan(verify: Verify, context: Mapping[str, Any]) -> dict[str, Any]:
    """The check rendered once for this finding, as stored with the run (raises UnsafeQuery)."""
    check = verify.check
    rendered: Any
    if check == "resolved":
        rendered = "resolved"
    elif isinstance(check, PromqlCheck):
        rendered = {"promql": _render_promql(check.promql, context)}
    else:
        rendered = check.model_dump(mode="json")
    return {"after": verify.after, "within": verify.within, "check": rendered}


# ---- demotion: min_success folded from outcomes ----
JUDGED = frozenset({VerifyOutcome.VERIFIED, VerifyOutcome.NOT_VERIFIED})


def latest_judged(outcomes: Sequence[OutcomeRecord], rule: str, depth: int) -> list[OutcomeRecord]:
    """The rule's newest ``depth`` verified / not_verified outcomes, newest first."""
    mine = [o for o in outcomes if o.rule == rule and o.outcome in JUDGED]
    return sorted(mine, key=lambda o: (o.decided_at, o.run_id), reverse=True)[:depth]


def demotion(min_success: MinSuccess, latest: Sequence[OutcomeRecord]) -> str | None:
    """Why the rule is demoted, or None.

    Demoted as soon as ``verified`` of the last ``of_last`` can no longer hold: more than
    ``of_last - verified`` of them are not_verified (with 2 of 3: the second not_verified).
    """
    failed = sum(1 for o in latest if o.outcome == VerifyOutcome.NOT_VERIFIED)
    allowed = min_success.of_last - min_success.verified
    if failed <= allowed:
        return None
    ok = len(latest) - failed
    return (
        f"{failed} of its last {len(latest)} outcomes were not verified, {ok} verified "
        f"(min_success {min_success.verified} of the last {min_success.of_last}; unknown ones not counted)"
    )


def demotions(
    rules: Sequence[Any], outcomes: Sequence[OutcomeRecord], restores: Mapping[str, datetime]
) -> dict[str, str]:
    """rule -> why it is demoted to require_approval (outcomes before its last restore do not count)."""
    out: dict[str, str] = {}
    for rule in rules:
        ms: MinSuccess | None = rule.min_success
        if ms is None:
            continue
        restored = restores.get(rule.name)
        kept = [o for o in outcomes if restored is None or o.decided_at > restored]
        why = demotion(ms, latest_judged(kept, rule.name, ms.of_last))
        if why is not None:
            out[rule.name] = why + f"; restore with `aiopsd rules restore {rule.name}`"
    return out
