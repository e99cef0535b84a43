"""Alertmanager matcher semantics, pure: =, !=, =~, !~, isEqual, anchored regex, missing label as ""."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aiopsd.engine.silences import Silence, SilenceMatcher, parse_silences, silencing

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def m(name: str, value: str, *, regex: bool = False, equal: bool = True) -> SilenceMatcher:
    return SilenceMatcher.model_validate({"name": name, "value": value, "isRegex": regex, "isEqual": equal})


@pytest.mark.parametrize(
    ("matcher", "labels", "hit"),
    [
        (m("service", "api"), {"service": "api"}, True),
        (m("service", "api"), {"service": "api-2"}, False),
        (m("service", "api", equal=False), {"service": "web"}, True),
        (m("service", "api", equal=False), {"service": "api"}, False),
        (m("service", "api", equal=False), {}, True),  # missing is "" which is not "api"
        (m("instance", "web-.*", regex=True), {"instance": "web-1"}, True),
        (m("instance", "web", regex=True), {"instance": "web-1"}, False),  # anchored: no substring match
        (m("instance", "web", regex=True), {"instance": "my-web"}, False),
        (m("instance", "a|b", regex=True), {"instance": "b"}, True),  # the whole alternation is anchored
        (m("instance", "a|b", regex=True), {"instance": "ab"}, False),
        (m("instance", "web-.*", regex=True, equal=False), {"instance": "db-1"}, True),
        (m("instance", "web-.*", regex=True, equal=False), {"instance": "web-1"}, False),
        (m("team", ""), {}, True),  # label="" matches a finding without the label
        (m("team", ""), {"team": "x"}, False),
        (m("team", ".*", regex=True), {}, True),
        (m("team", ".+", regex=True), {}, False),
        (m("x", "(", regex=True), {"x": "("}, False),  # a regex Python cannot compile never matches
    ],
)
def test_matcher_semantics(matcher: SilenceMatcher, labels: dict[str, str], hit: bool) -> None:
    assert matcher.matches(labels) is hit


def test_is_equal_defaults_to_true_and_ops_print_like_amtool() -> None:
    plain = SilenceMatcher.model_validate({"name": "a", "value": "b", "isRegex": False})
    assert plain.is_equal and str(plain) == 'a="b"'
    assert [
        str(x) for x in (m("a", "b", equal=False), m("a", "b", regex=True), m("a", "b", regex=True, equal=False))
    ] == ['a!="b"', 'a=~"b"', 'a!~"b"']


def silence(
    sid: str, *matchers: SilenceMatcher, start: float = -60, end: float = 3600, state: str = "active"
) -> Silence:
    return Silence(
        id=sid,
        matchers=matchers,
        starts_at=NOW + timedelta(seconds=start),
        ends_at=NOW + timedelta(seconds=end),
        state=state,
    )


def test_a_silence_needs_every_matcher_and_its_time() -> None:
    s = silence("s1", m("service", "api"), m("env", "prod"))
    assert silencing([s], {"service": "api", "env": "prod", "x": "y"}, NOW) == s
    assert silencing([s], {"service": "api", "env": "dev"}, NOW) is None
    assert silencing([silence("later", m("service", "api"), start=60)], {"service": "api"}, NOW) is None
    assert silencing([silence("over", m("service", "api"), end=-1)], {"service": "api"}, NOW) is None
    assert silencing([silence("exp", m("service", "api"), state="expired")], {"service": "api"}, NOW) is None


def test_the_silence_that_ends_last_is_reported() -> None:
    short, long_ = silence("a", m("s", "x"), end=60), silence("b", m("s", "x"), end=7200)
    assert silencing([short, long_], {"s": "x"}, NOW) == long_


def test_malformed_silences_from_the_api_are_skipped() -> None:
    good = {
        "id": "1",
        "matchers": [{"name": "a", "value": "b", "isRegex": False}],
        "startsAt": NOW.isoformat(),
        "endsAt": (NOW + timedelta(hours=1)).isoformat(),
        "status": {"state": "active"},
        "createdBy": "me",
    }
    parsed = parse_silences([good, {"id": "2"}, "junk", None])
    assert [s.id for s in parsed] == ["1"]


def test_the_api_status_state_is_read() -> None:
    raw = {
        "id": "1",
        "matchers": [{"name": "a", "value": "b", "isRegex": False}],
        "startsAt": NOW.isoformat(),
        "endsAt": (NOW + timedelta(hours=1)).isoformat(),
        "status": {"state": "expired"},
    }
    (s,) = parse_silences([raw])
    assert s.state == "expired" and not s.active(NOW)
