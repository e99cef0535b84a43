"""Notify channel config: secrets only from files, names checked, rule references checked by `aiopsd check`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from aiopsd.actions.notify import CHANNELS
from aiopsd.actions.notify.slack import SlackChannel
from aiopsd.cli import create_app
from aiopsd.config import load_settings
from aiopsd.errors import ConfigError


def write(tmp_path: Path, channels: object, rules: list[dict[str, Any]] | None = None) -> Path:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "r.yaml").write_text(yaml.safe_dump({"rules": rules or []}))
    cfg = tmp_path / "aiopsd.yaml"
    cfg.write_text(yaml.safe_dump({"rules_dir": "rules", "notify_channels": channels}))
    return cfg


def test_inline_secret_is_refused_naming_file_and_field(tmp_path: Path) -> None:
    cfg = write(tmp_path, {"pd": {"kind": "pagerduty", "routing_key": "abc"}})
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg)
    msg = str(exc.value)
    assert str(cfg) in msg and "notify_channels.pd" in msg and "routing_key_file" in msg
    assert "abc" not in msg


def test_secret_files_resolve_against_the_config_directory(tmp_path: Path) -> None:
    cfg = write(tmp_path, {"team": {"kind": "slack", "url_file": "secrets/slack.url"}})
    chan = load_settings(cfg).notify_channels["team"]
    assert isinstance(chan, SlackChannel) and chan.url_file == tmp_path / "secrets" / "slack.url"


def test_unknown_kind_lists_the_registry(tmp_path: Path) -> None:
    cfg = write(tmp_path, {"x": {"kind": "carrier-pigeon"}})
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg)
    assert all(kind in str(exc.value) for kind in CHANNELS)


def test_bad_channel_name_is_refused(tmp_path: Path) -> None:
    cfg = write(tmp_path, {"a b": {"kind": "webhook", "url": "http://x"}})
    with pytest.raises(ConfigError, match="notify channel names"):
        load_settings(cfg)


def test_check_refuses_a_rule_naming_an_unknown_channel(tmp_path: Path) -> None:
    rule: dict[str, Any] = {
        "name": "page",
        "match": {"kind": "alert"},
        "action": {"notify": {"message": "m", "channel": "ops"}},
        "on_resolved": {"notify": {"message": "ok", "channel": "pager"}},
    }
    cfg = write(tmp_path, {"ops": {"kind": "webhook", "url": "http://127.0.0.1:9/hook"}}, [rule])
    res = CliRunner().invoke(create_app(), ["check", "--config", str(cfg)])
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert "r.yaml" in text and "rule 'page'" in text and "on_resolved.notify.channel" in text and "'pager'" in text


def test_check_accepts_known_channels_and_plain_log_notify(tmp_path: Path) -> None:
    rules: list[dict[str, Any]] = [
        {"name": "page", "match": {"kind": "alert"}, "action": {"notify": {"message": "m", "channel": "ops"}}},
        {"name": "log", "match": {"kind": "alert"}, "action": {"notify": {"message": "m"}}},
    ]
    cfg = write(tmp_path, {"ops": {"kind": "webhook", "url": "http://127.0.0.1:9/hook"}}, rules)
    res = CliRunner().invoke(create_app(), ["check", "--config", str(cfg)])
    assert res.exit_code == 0, res.output


def test_finding_data_cannot_be_set_by_a_rule() -> None:
    from pydantic import ValidationError

    from aiopsd.engine.actions import NotifyParams

    with pytest.raises(ValidationError):
        NotifyParams.model_validate({"message": "m", "finding_data": "{{ 7*7 }}"})
