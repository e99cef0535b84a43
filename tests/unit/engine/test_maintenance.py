"""Maintenance windows: one-off and cron windows, label matching, the CLI window in the state DB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from aiopsd.cli import create_app
from aiopsd.config import load_settings
from aiopsd.engine.maintenance import MaintenanceWindow, covering, parse_match
from aiopsd.errors import ConfigError
from aiopsd.store import StateStore
from aiopsd.store.maintenance import list_windows

NOW = datetime(2026, 3, 4, 2, 30, tzinfo=UTC)  # a Wednesday


def window(**kw: object) -> MaintenanceWindow:
    return MaintenanceWindow.model_validate({"name": "w", **kw})


def test_one_off_window_covers_its_interval_only() -> None:
    w = window(start="2026-03-04T02:00:00Z", end="2026-03-04T03:00:00Z", labels={"service": "api"})
    hit = covering([w], {"service": "api"}, NOW)
    assert hit is not None and hit.ends_at == datetime(2026, 3, 4, 3, 0, tzinfo=UTC)
    assert covering([w], {"service": "api"}, datetime(2026, 3, 4, 3, 0, tzinfo=UTC)) is None  # end is exclusive
    assert covering([w], {"service": "api"}, datetime(2026, 3, 4, 1, 59, tzinfo=UTC)) is None
    assert covering([w], {"service": "web"}, NOW) is None


def test_cron_window_covers_each_occurrence_for_its_duration() -> None:
    w = window(cron="0 2 * * 3", duration="1h", labels={"service": "api"})  # Wednesdays 02:00-03:00 UTC
    hit = covering([w], {"service": "api"}, NOW)
    assert hit is not None and (hit.starts_at, hit.ends_at) == (
        datetime(2026, 3, 4, 2, 0, tzinfo=UTC),
        datetime(2026, 3, 4, 3, 0, tzinfo=UTC),
    )
    assert covering([w], {"service": "api"}, NOW + timedelta(hours=1)) is None
    assert covering([w], {"service": "api"}, NOW + timedelta(days=1)) is None  # Thursday
    assert covering([w], {"service": "api"}, NOW + timedelta(days=7)) is not None
    assert covering([w], {"service": "api"}, datetime(2026, 3, 4, 2, 0, tzinfo=UTC)) is not None  # start inclusive


def test_cron_window_in_its_time_zone() -> None:
    w = window(cron="0 3 * * *", duration="30m", timezone="Europe/Berlin")  # 03:00 CET = 02:00 UTC in March
    assert covering([w], {}, datetime(2026, 3, 4, 2, 10, tzinfo=UTC)) is not None
    assert covering([w], {}, datetime(2026, 3, 4, 3, 10, tzinfo=UTC)) is None


def test_labels_use_the_rule_matcher_syntax() -> None:
    w = window(
        start="2026-03-04T00:00:00Z", end="2026-03-05T00:00:00Z", labels={"instance": "~web-[0-9]+", "env": "!staging"}
    )
    assert covering([w], {"instance": "web-12", "env": "prod"}, NOW) is not None
    assert covering([w], {"instance": "web-12x", "env": "prod"}, NOW) is None  # full match
    assert covering([w], {"instance": "web-1", "env": "staging"}, NOW) is None
    assert covering([window(start="2026-03-04T00:00:00Z", end="2026-03-05T00:00:00Z")], {"a": "b"}, NOW)


def test_the_window_ending_last_wins() -> None:
    a = window(name="a", start="2026-03-04T00:00:00Z", end="2026-03-04T04:00:00Z")
    b = MaintenanceWindow.model_validate({"name": "b", "cron": "0 2 * * *", "duration": "3h"})
    hit = covering([a, b], {}, NOW)
    assert hit is not None and hit.window.name == "b" and "maintenance b until 2026-03-04 05:00:00Z" in hit.reason()


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"cron": "0 2 * * *"}, "cron and a duration"),
        ({"start": "2026-03-04T02:00:00Z"}, "start and end"),
        ({"start": "2026-03-04T02:00:00Z", "end": "2026-03-04T01:00:00Z"}, "end after start"),
        (
            {"start": "2026-03-04T02:00:00Z", "end": "2026-03-04T03:00:00Z", "cron": "* * * * *", "duration": "1h"},
            "either one-off",
        ),
        ({"cron": "61 * * * *", "duration": "1h"}, "bad cron"),
        ({"cron": "0 2 * * *", "duration": "1h", "timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"start": "2026-03-04T02:00:00", "end": "2026-03-04T03:00:00"}, "timezone"),
        ({"cron": "0 2 * * *", "duration": "1h", "labels": {"a": "~("}}, "bad regex"),
    ],
)
def test_bad_windows_are_refused(raw: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        window(**raw)


def test_config_window_errors_name_file_and_field(tmp_path: Path) -> None:
    cfg = tmp_path / "aiopsd.yaml"
    cfg.write_text(yaml.safe_dump({"maintenance": [{"name": "patch", "cron": "0 2 * * *"}]}))
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg)
    assert str(cfg) in str(exc.value) and "maintenance.0" in str(exc.value)


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("service=api", ("service", "api")),
        ("service!=api", ("service", "!api")),
        ("instance=~web-.*", ("instance", "~web-.*")),
        ("instance!~web-.*", ("instance", "!~web-.*")),
    ],
)
def test_cli_matchers(raw: str, parsed: tuple[str, str]) -> None:
    assert parse_match(raw) == parsed


@pytest.mark.parametrize("raw", ["service", "=api", "service=~(", "ser vice=api", "service=~", "a=!b"])
def test_bad_cli_matchers(raw: str) -> None:
    if raw == "service=~":
        assert parse_match(raw) == ("service", "~")  # an empty regex matches only the empty value
        return
    with pytest.raises(ValueError, match="bad"):
        parse_match(raw)


def test_cli_start_stores_a_window_that_covers_matching_findings(tmp_path: Path) -> None:
    cfg = tmp_path / "aiopsd.yaml"
    cfg.write_text(yaml.safe_dump({"state_url": f"sqlite:///{tmp_path / 'state.db'}"}))
    runner = CliRunner()
    res = runner.invoke(
        create_app(),
        [
            "maintenance",
            "start",
            "--for",
            "1h",
            "--match",
            "service=api",
            "--match",
            "instance=~web-.*",
            "--name",
            "deploy",
            "--comment",
            "release 4.2",
            "--config",
            str(cfg),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "maintenance deploy until" in res.output
    again = runner.invoke(
        create_app(),
        ["maintenance", "start", "--for", "1h", "--match", "service=api", "--name", "deploy", "--config", str(cfg)],
    )
    assert again.exit_code == 2 and "already active" in again.output
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        now = datetime.now(UTC)
        (stored,) = list_windows(store, now=now)
        w = MaintenanceWindow(**stored.as_window_data())
        assert stored.labels == {"service": "api", "instance": "~web-.*"} and stored.comment == "release 4.2"
        assert 3590 < (stored.ends_at - now).total_seconds() <= 3600
        assert covering([w], {"service": "api", "instance": "web-1"}, now) is not None
        assert covering([w], {"service": "db", "instance": "web-1"}, now) is None
        assert any(e["kind"] == "maintenance_start" for e in store.audit_entries())
    finally:
        store.close()
    listed = runner.invoke(create_app(), ["maintenance", "list", "--config", str(cfg)])
    assert listed.exit_code == 0 and "deploy" in listed.output
    stop = runner.invoke(create_app(), ["maintenance", "stop", "deploy", "--config", str(cfg)])
    assert stop.exit_code == 0, stop.output
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        assert list_windows(store, now=datetime.now(UTC)) == []
    finally:
        store.close()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--for", "soon", "--match", "a=b"], "not a duration"),
        (["--for", "1h"], "at least one --match"),
        (["--for", "1h", "--match", "a"], "bad matcher"),
    ],
)
def test_cli_start_refuses_bad_input(tmp_path: Path, args: list[str], words: str) -> None:
    cfg = tmp_path / "aiopsd.yaml"
    cfg.write_text(yaml.safe_dump({"state_url": f"sqlite:///{tmp_path / 'state.db'}"}))
    res = CliRunner().invoke(create_app(), ["maintenance", "start", *args, "--config", str(cfg)])
    assert res.exit_code == 2 and words in " ".join(res.output.split())
