from __future__ import annotations

from pathlib import Path

import pytest

from aiopsd.config import load_settings
from aiopsd.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_example_config_is_valid_and_paths_are_relative_to_the_file() -> None:
    s = load_settings(REPO / "aiopsd.example.yaml")
    assert s.listen == "127.0.0.1:9797"
    assert s.rules_dir == REPO / "rules"
    assert s.state_url == f"sqlite:///{REPO / 'aiopsd-state' / 'state.db'}"
    assert s.watches[0].step == 15.0


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("listen: 127.0.0.1:1111\nprometheus: {url: http://a:9090}\n")
    monkeypatch.setenv("AIOPSD_LISTEN", "127.0.0.1:2222")
    monkeypatch.setenv("AIOPSD_PROMETHEUS__URL", "http://b:9090")
    s = load_settings(cfg)
    assert s.port == 2222
    assert s.prometheus.url == "http://b:9090"


@pytest.mark.parametrize(("body", "field", "words"), [
    ("watches:\n  - {name: x, query: up, step: 30x}\n", "watches.0.step", "invalid duration"),
    ("listen: nowhere\n", "listen", "HOST:PORT"),
    ("watches:\n  - {name: x, query: up, detector: magic}\n", "watches.0.detector", "unknown detector"),
    ("surprise: 1\n", "surprise", "Extra inputs"),
    ("watches:\n  - {name: x, query: up, interval: .inf}\n", "watches.0.interval", "finite"),
    ("dispatch_interval: .nan\n", "dispatch_interval", "not a number"),
    ("alerts: {max_age: 0}\n", "alerts.max_age", "more than zero"),
    ("watches:\n  - {name: a, query: up}\n  - {name: a, query: up}\n", None, "unique"),
])
def test_bad_config_names_file_and_field(tmp_path: Path, body: str, field: str | None, words: str) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(body)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    msg = str(info.value)
    assert str(cfg) in msg
    assert words in msg
    if field:
        assert f"field {field!r}" in msg


def test_missing_and_unparsable_files_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "nope.yaml")
    (tmp_path / "x.yaml").write_text("listen: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(tmp_path / "x.yaml")
