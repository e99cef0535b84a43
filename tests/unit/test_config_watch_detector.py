"""Watch detector settings are validated when the config is loaded (what ``aiopsd check`` runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiopsd.config import load_settings
from aiopsd.errors import ConfigError


def _load(tmp_path: Path, watch: str) -> ConfigError:
    cfg = tmp_path / "aiopsd.yaml"
    cfg.write_text(f"watches:\n  - {{name: x, query: up, {watch}}}\n  - {{name: y, query: up}}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    assert str(cfg) in str(info.value)
    return info.value


@pytest.mark.parametrize(
    ("watch", "field", "words"),
    [
        # issue 12 item 15: a misspelt parameter used to pass check and fail in the poll loop
        ("detector: mad, detector_params: {windw: 5}", "watches.0.detector_params.windw", "unknown parameter"),
        ("detector_params: {history: 3}", "watches.0.detector_params.history", ">= 16"),
        ("detector: mad, detector_params: {threshold: -1}", "watches.0.detector_params.threshold", "> 0"),
        ("detector: mad, detector_params: {window: ten}", "watches.0.detector_params.window", "an int"),
        ("detector: adaptive, detector_params: {window: 5.5}", "watches.0.detector_params.window", "an int"),
        ("detector: stl, detector_params: {method: magic}", "watches.0.detector_params.method", "one of"),
        ("detector: default, detector_params: {level_alpha: 1}", "watches.0.detector_params.level_alpha", "< 1"),
        ("direction: sideways", "watches.0.direction", "'up', 'down' or 'both'"),
        ("min_deviation: -1", "watches.0.min_deviation", "greater than or equal to 0"),
        ("min_relative_deviation: -0.5", "watches.0.min_relative_deviation", "greater than or equal to 0"),
        ("warmup: soon", "watches.0.warmup", "invalid duration"),
        ("detector: iforest, direction: up", "watches.0", "no expected value"),
    ],
)
def test_bad_detector_settings_name_the_field(tmp_path: Path, watch: str, field: str, words: str) -> None:
    err = _load(tmp_path, watch)
    assert err.field == field, str(err)
    assert words in str(err)


def test_good_detector_settings_load(tmp_path: Path) -> None:
    cfg = tmp_path / "aiopsd.yaml"
    cfg.write_text(
        "watches:\n  - {name: x, query: up, detector: mad, detector_params: {window: 100},"
        " direction: up, min_deviation: 5, min_relative_deviation: 0.1, warmup: 2h}\n"
    )
    w = load_settings(cfg).watches[0]
    assert w.detector_params == {"window": 100}
    assert (w.direction, w.min_deviation, w.min_relative_deviation, w.warmup) == ("up", 5.0, 0.1, 7200.0)
