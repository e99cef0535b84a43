"""Maintenance windows, pure: which window covers a finding at ``now``.

A window is one-off (``start``/``end``) or recurring (``cron`` + ``duration``; the cron
expression is read by croniter with standard crontab semantics, in the window's
``timezone``). APScheduler 3's ``CronTrigger.from_crontab`` is not used: it counts
weekdays from Monday = 0, so ``0 2 * * 3`` would be Thursday there and Wednesday in cron.
Labels are matched with the rules' matcher syntax (``value``, ``~regex`` full match,
``!value``, ``!~regex``); a window without labels covers every finding.
Windows come from the config and from the state DB
(``aiopsd maintenance start``); both are this model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import AwareDatetime, Field, field_validator, model_validator

from aiopsd.durations import Duration, format_duration
from aiopsd.engine.rules import LabelMatcher, Matchers
from aiopsd.models import Frozen


class MaintenanceWindow(Frozen):
    name: str = Field(pattern=r"^[a-zA-Z0-9_.:-]+$")
    labels: Matchers = Field(default_factory=dict)
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    cron: str | None = None
    duration: Duration | None = None
    timezone: str = "UTC"
    comment: str = ""
    created_by: str = ""

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Europe/Berlin)") from None
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> MaintenanceWindow:
        one_off = self.start is not None or self.end is not None
        recurring = self.cron is not None or self.duration is not None
        if one_off == recurring:
            raise ValueError("a window is either one-off (start and end) or recurring (cron and duration)")
        if one_off:
            if self.start is None or self.end is None or self.end <= self.start:
                raise ValueError("a one-off window needs start and end, end after start")
        else:
            if self.cron is None or self.duration is None or self.duration <= 0:
                raise ValueError("a recurring window needs cron and a duration greater than 0")
            if len(self.cron.split()) != 5 or not croniter.is_valid(self.cron):
                raise ValueError(
                    f"bad cron {self.cron!r}: five fields, minute hour day month weekday (0 or 7 = Sunday)"
                )
        return self

    def occurrence(self, now: datetime) -> tuple[datetime, datetime] | None:
        """(start, end) of this window's occurrence that contains ``now``, or None."""
        if self.start is not None and self.end is not None:
            return (self.start, self.end) if self.start <= now < self.end else None
        assert self.duration is not None and self.cron is not None
        length = timedelta(seconds=self.duration)
        # The latest start at or before now (croniter has second resolution, so step past now, then back).
        it = croniter(self.cron, now.astimezone(ZoneInfo(self.timezone)) + timedelta(seconds=1))
        start = it.get_prev(datetime)
        if start > now:
            start = it.get_prev(datetime)
        start = start.astimezone(now.tzinfo)
        return (start, start + length) if start <= now < start + length else None

    def covers(self, labels: Mapping[str, str]) -> bool:
        return all(LabelMatcher.parse(v).matches(labels.get(k)) for k, v in self.labels.items())

    def describe(self) -> str:
        what = (
            f"cron {self.cron!r} for {format_duration(float(self.duration or 0))}"
            if self.cron
            else f"{self.start:%Y-%m-%d %H:%M}Z to {self.end:%Y-%m-%d %H:%M}Z"
        )
        match = ", ".join(f"{k}={v}" for k, v in self.labels.items()) or "everything"
        return f"maintenance {self.name} ({what}; {match})"


@dataclass(frozen=True)
class Covered:
    window: MaintenanceWindow
    starts_at: datetime
    ends_at: datetime

    def reason(self) -> str:
        comment = f": {self.window.comment}" if self.window.comment else ""
        return f"maintenance {self.window.name} until {self.ends_at:%Y-%m-%d %H:%M:%S}Z{comment}"


def covering(windows: Sequence[MaintenanceWindow], labels: Mapping[str, str], now: datetime) -> Covered | None:
    """The window covering ``labels`` at ``now`` that ends last (the one a person would wait for), or None."""
    hits: list[Covered] = []
    for w in windows:
        if not w.covers(labels):
            continue
        occ = w.occurrence(now)
        if occ is not None:
            hits.append(Covered(w, *occ))
    return max(hits, key=lambda c: c.ends_at) if hits else None


_MATCH = re.compile(r"^([a-zA-Z_][a-zA-Z0-9_]*)(!~|=~|!=|=)(.*)$")
_PREFIX = {"=": "", "!=": "!", "=~": "~", "!~": "!~"}


def parse_match(raw: str) -> tuple[str, str]:
    """``service=api``, ``service!=api``, ``instance=~web-.*``, ``instance!~web-.*`` -> (label, rule matcher)."""
    m = _MATCH.match(raw.strip())
    if m is None:
        raise ValueError(f"bad matcher {raw!r}: use label=value, label!=value, label=~regex or label!~regex")
    if m.group(2) in ("=", "!=") and m.group(3)[:1] in ("~", "!"):
        raise ValueError(f"bad matcher {raw!r}: a value starting with '~' or '!' reads as a regex or negation")
    matcher = _PREFIX[m.group(2)] + m.group(3)
    LabelMatcher.parse(matcher)
    return m.group(1), matcher
