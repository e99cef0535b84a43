from __future__ import annotations

import pytest

from aiopsd.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("2d", 172800),
        ("500ms", 0.5),
        (15, 15),
        (0.25, 0.25),
    ],
)
def test_parses_what_people_write(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "30x",
        "m5",
        "5 m",
        "-1s",
        -3,
        True,
        "1h-5m",
        None,
        float("inf"),
        float("nan"),
        10**400,
        "9" * 400 + "s",
        "3651d",
    ],
)
def test_rejects_with_a_hint(bad: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(bad)


def test_formats_readably() -> None:
    assert format_duration(90) == "1m30s"
    assert format_duration(3600) == "1h"
    assert format_duration(0.2) == "200ms"


def test_positive_durations_refuse_zero() -> None:
    from aiopsd.durations import parse_positive_duration

    assert parse_positive_duration("1s") == 1.0
    with pytest.raises(ValueError, match="more than zero"):
        parse_positive_duration(0)
