"""Alertmanager silences, pure: the matcher semantics of Alertmanager, and "which silence covers these labels".

Semantics follow Alertmanager's ``pkg/labels`` matchers and API v2 silence matchers:

- a matcher is ``{name, value, isRegex, isEqual}``: ``=`` (isRegex false, isEqual true),
  ``!=`` (false, false), ``=~`` (true, true), ``!~`` (true, false); ``isEqual`` defaults to true;
- a regex is anchored at both ends (``^(?:value)$``);
- a label the finding does not carry has the value ``""``, so ``team=""`` matches a finding
  without ``team`` and ``team=~".*"`` matches every finding;
- a silence covers labels when every one of its matchers matches and ``startsAt <= now < endsAt``.

Python's ``re`` stands in for Go's RE2; the two agree on the syntax silences use in practice.
A matcher whose regex Python cannot compile never matches (the silence is reported, not applied).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import cached_property
from typing import Any

from pydantic import ConfigDict, Field, model_validator

from aiopsd.models import Frozen


class SilenceMatcher(Frozen):
    model_config = ConfigDict(extra="ignore")

    name: str
    value: str
    is_regex: bool = Field(default=False, alias="isRegex")
    is_equal: bool = Field(default=True, alias="isEqual")

    @cached_property
    def _pattern(self) -> re.Pattern[str] | None:
        try:
            return re.compile(f"^(?:{self.value})$")
        except re.error:
            return None

    @property
    def op(self) -> str:
        return {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}[
            (self.is_regex, self.is_equal)
        ]

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.is_regex:
            pattern = self._pattern
            if pattern is None:
                return False
            hit = pattern.match(actual) is not None
        else:
            hit = actual == self.value
        return hit == self.is_equal

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'


class Silence(Frozen):
    """One silence as Alertmanager's ``GET /api/v2/silences`` returns it (unknown fields ignored)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    matchers: tuple[SilenceMatcher, ...]
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime = Field(alias="endsAt")
    created_by: str = Field(default="", alias="createdBy")
    comment: str = ""
    # "active", "pending" or "expired" (the API's status.state); the times decide too.
    state: str = ""

    @model_validator(mode="before")
    @classmethod
    def _state(cls, data: Any) -> Any:
        if isinstance(data, dict) and "state" not in data and isinstance(data.get("status"), dict):
            return {**data, "state": str(data["status"].get("state", ""))}
        return data

    def active(self, now: datetime) -> bool:
        return self.state in ("", "active") and self.starts_at <= now < self.ends_at

    def matches(self, labels: Mapping[str, str]) -> bool:
        return bool(self.matchers) and all(m.matches(labels) for m in self.matchers)

    def describe(self) -> str:
        by = f" by {self.created_by}" if self.created_by else ""
        return (
            f"silence {self.id}{by} until {self.ends_at:%Y-%m-%d %H:%M}Z {{{', '.join(str(m) for m in self.matchers)}}}"
        )


def parse_silences(items: Iterable[object]) -> list[Silence]:
    """Silences from the API answer; an item that is not a silence is skipped (and counted by the caller)."""
    out: list[Silence] = []
    for item in items:
        try:
            out.append(Silence.model_validate(item))
        except ValueError:
            continue
    return out


def silencing(silences: Sequence[Silence], labels: Mapping[str, str], now: datetime) -> Silence | None:
    """The active silence covering ``labels`` at ``now`` that ends last, or None."""
    hits = [s for s in silences if s.active(now) and s.matches(labels)]
    return max(hits, key=lambda s: s.ends_at) if hits else None
