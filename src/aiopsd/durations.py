"""Durations as people write them in YAML ("30s", "5m", "1h30m", "2d") and as seconds."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


# Longer than any guard needs, short enough that ``now - duration`` stays a valid datetime.
MAX_DURATION = 10 * 365 * 86400.0


def parse_duration(value: Any) -> float:
    """Seconds from a number (already seconds) or a string like ``"1h30m"``.

    Finite, not negative, at most :data:`MAX_DURATION` (10 years): ``.inf``, ``.nan`` and
    overflowing numbers are refused here, at load, not later in a dispatch tick.
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: use e.g. 30s, 5m, 1h")
    seconds: float | None = None
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
    elif isinstance(value, str):
        text = value.strip()
        pos, total = 0, 0.0
        for m in _PART.finditer(text):
            if m.start() != pos:
                break
            total += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if text and pos == len(text):
            seconds = total
    if seconds is None:
        raise ValueError(f"invalid duration {value!r}: use e.g. 30s, 5m, 1h, 1d")
    if math.isnan(seconds):
        raise ValueError(f"invalid duration {value!r}: not a number")
    if seconds < 0:
        raise ValueError(f"invalid duration {value!r}: must not be negative")
    if seconds > MAX_DURATION:
        raise ValueError(f"invalid duration {value!r}: must be finite and at most 3650d")
    return seconds


def parse_positive_duration(value: Any) -> float:
    """Like :func:`parse_duration`, and more than zero (an interval, a window, a timeout)."""
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"invalid duration {value!r}: must be more than zero")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest readable form, e.g. ``90 -> "1m30s"``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    out, rest = [], round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out) or "0s"


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A pydantic field type: accepts ``"5m"`` or seconds, stores seconds."""

PositiveDuration = Annotated[float, BeforeValidator(parse_positive_duration)]
"""A :data:`Duration` that must be more than zero (where zero would mean "never" or "always")."""
