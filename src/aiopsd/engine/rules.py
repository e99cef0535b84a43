"""Remediation rules: the YAML schema, validated the moment a file is loaded.

The action kinds a rule may name are :mod:`aiopsd.engine.actions`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from aiopsd.durations import Duration, PositiveDuration
from aiopsd.engine.actions import Action
from aiopsd.engine.verify import MinSuccess, Verify
from aiopsd.models import FindingKind, Frozen


class LabelMatcher(Frozen):
    """``value`` equality, ``~regex`` full match, ``!value`` / ``!~regex`` negation."""

    negate: bool
    regex: re.Pattern[str] | None
    value: str

    @classmethod
    def parse(cls, raw: str) -> LabelMatcher:
        negate = raw.startswith("!")
        body = raw[1:] if negate else raw
        if body.startswith("~"):
            try:
                return cls(negate=negate, regex=re.compile(body[1:]), value=body[1:])
            except re.error as exc:
                raise ValueError(f"bad regex {body[1:]!r}: {exc}") from None
        return cls(negate=negate, regex=None, value=body)

    def matches(self, actual: str | None) -> bool:
        if actual is None:
            hit = False
        elif self.regex is not None:
            hit = self.regex.fullmatch(actual) is not None
        else:
            hit = actual == self.value
        return hit != self.negate


def check_matchers(value: dict[str, str]) -> dict[str, str]:
    """Every matcher of a labels map parses (a bad regex is a ValueError naming it)."""
    for raw in value.values():
        LabelMatcher.parse(str(raw))
    return value


# A labels map of matchers, as rules, maintenance windows and fixtures write them.
Matchers = Annotated[dict[str, str], AfterValidator(check_matchers)]


class Match(Frozen):
    kind: FindingKind | None = None
    source: str | None = None
    labels: Matchers = Field(default_factory=dict)
    min_score: float | None = None

    def matchers(self) -> dict[str, LabelMatcher]:
        return {k: LabelMatcher.parse(v) for k, v in self.labels.items()}


class ForCount(Frozen):
    """Fire when the finding was seen ``count`` times within ``window``."""

    count: int = Field(ge=1)
    window: PositiveDuration


class RateBudget(Frozen):
    count: int = Field(ge=1)
    window: PositiveDuration


class CircuitBreaker(Frozen):
    failures: int = Field(default=3, ge=1)
    reset_after: PositiveDuration = 3600.0


class Guards(Frozen):
    cooldown: Duration = 0.0
    max_per_window: RateBudget | None = None
    max_hosts: int | None = Field(default=None, ge=1)
    concurrency: int | None = Field(default=None, ge=1)
    timeout: PositiveDuration = 600.0
    retries: int = Field(default=0, ge=0, le=10)
    retry_backoff: Duration = 10.0
    require_approval: bool = False
    dry_run: bool = False
    circuit_breaker: CircuitBreaker = CircuitBreaker()
    # Data older than this (seconds since the finding was last seen) is never acted on.
    stale_after: PositiveDuration = 900.0


class Rule(Frozen):
    name: str = Field(pattern=r"^[a-zA-Z0-9_.-]+$")
    description: str = ""
    enabled: bool = True
    match: Match
    for_: Duration | ForCount = Field(default=0.0, alias="for")
    action: Action
    on_resolved: Action | None = None
    guards: Guards = Guards()
    # A finding skipped for a maintenance window or a silence: act once that ends if it still fires, or drop it.
    after_maintenance: Literal["act", "drop"] = "act"
    # Closed loop (engine/verify.py): did a succeeded run fix the problem; what to do when it did not;
    # and how many of the latest outcomes must be verified before the rule loses its autonomy.
    verify: Verify | None = None
    on_not_verified: Action | None = None
    min_success: MinSuccess | None = None

    @model_validator(mode="after")
    def _loop_needs_verify(self) -> Rule:
        for name in ("on_not_verified", "min_success"):
            if getattr(self, name) is not None and self.verify is None:
                raise ValueError(f"{name} needs a verify: check on the rule (e.g. verify: {{within: 10m}})")
        return self

    @field_validator("for_")
    @classmethod
    def _count_needs_data(cls, value: float | ForCount, info: ValidationInfo) -> float | ForCount:
        # An alert's "sightings" would be Alertmanager's notification schedule (group_interval,
        # repeat_interval, HA peers), not evidence: a count rule on alerts would act or not by chance.
        match = info.data.get("match")
        if (
            isinstance(value, ForCount)
            and isinstance(match, Match)
            and match.kind not in (FindingKind.ANOMALY, FindingKind.DRIFT)
        ):
            raise ValueError(
                "for: {count, window} needs match.kind anomaly or drift (alert findings have no "
                "sightings to count: use a duration, e.g. for: 5m, or the alert rule's own for:)"
            )
        return value


class RuleFile(Frozen):
    rules: list[Rule] = Field(default_factory=list)
