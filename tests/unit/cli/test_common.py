"""The CLI's one error helper: what `aiopsd check` prints for a bad file is the file's name, whole."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from aiopsd.cli import create_app


def test_an_error_naming_a_long_path_with_brackets_prints_it_whole_and_literally(tmp_path: Path) -> None:
    # A deep directory (longer than a terminal line) and a file name that looks like rich markup:
    # the error must show both exactly, neither wrapped nor interpreted.
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    rules = deep / "rules"
    rules.mkdir(parents=True)
    bad = rules / "[bold]oops[red].yaml"
    bad.write_text("rules:\n  - name: r\n    match: {}\n    action: {nonsense: {}}\n")
    cfg = deep / "aiopsd.yaml"
    cfg.write_text(f"rules_dir: {rules}\nplaybooks_dir: {deep}\n")
    res = CliRunner().invoke(create_app(), ["check", "--config", str(cfg)])
    assert res.exit_code == 2
    text = res.output
    assert str(bad) in text, text
    assert "rule 'r'" in text
