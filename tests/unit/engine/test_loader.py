from __future__ import annotations

from pathlib import Path

import pytest

from aiopsd.engine import load_rules
from aiopsd.engine.actions import PlaybookAction, RetrainAction
from aiopsd.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]


def write(tmp: Path, name: str, body: str) -> Path:
    (tmp / "rules").mkdir(exist_ok=True)
    p = tmp / "rules" / name
    p.write_text(body)
    return p


def test_action_kind_is_chosen_by_its_key(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        """
rules:
  - name: pb
    match: {kind: anomaly}
    action: {playbook: restart_service.yml, targets: "{{ labels.host }}"}
  - name: rt
    match: {kind: drift}
    action: {retrain: {model_dir: /m}}
""",
    )
    rules = load_rules(tmp_path / "rules", REPO / "playbooks")
    assert isinstance(rules[0].action, PlaybookAction)
    assert isinstance(rules[1].action, RetrainAction)


@pytest.mark.parametrize(
    ("body", "rule", "field", "words"),
    [
        (
            "rules:\n  - name: r1\n    match: {kind: nonsense}\n    action: {notify: {message: hi}}\n",
            "r1",
            "match.kind",
            "anomaly",
        ),
        (
            "rules:\n  - name: r2\n    match: {}\n    action: {playbook: x.yml, notify: {message: m}}\n",
            "r2",
            "action",
            "exactly one of",
        ),
        (
            "rules:\n  - name: r3\n    match: {}\n    action: {notify: {message: hi}}\n    guards: {cooldown: soon}\n",
            "r3",
            "guards.cooldown",
            "invalid duration",
        ),
        (
            "rules:\n  - name: r4\n    match: {labels: {host: '~(['}}\n    action: {notify: {message: hi}}\n",
            "r4",
            "match.labels",
            "bad regex",
        ),
        (
            "rules:\n  - name: r5\n    match: {}\n    action: {playbook: '../etc/passwd'}\n",
            "r5",
            "action.playbook",
            "inside playbooks_dir",
        ),
        ("rules:\n  - match: {}\n    action: {notify: {message: hi}}\n", "#1", "name", "required"),
        (
            "rules:\n  - name: r7\n    match: {}\n    action: {notify: {message: '{{ labels.x'}}\n",
            "r7",
            "action.notify.message",
            "bad template",
        ),
        # Durations are finite, and more than zero where zero means nothing.
        (
            "rules:\n  - name: r8\n    match: {}\n    action: {notify: {message: hi}}\n"
            "    guards: {max_per_window: {count: 1, window: .inf}}\n",
            "r8",
            "guards.max_per_window.window",
            "finite",
        ),
        (
            "rules:\n  - name: r9\n    match: {}\n    action: {notify: {message: hi}}\n    guards: {timeout: .nan}\n",
            "r9",
            "guards.timeout",
            "not a number",
        ),
        (
            "rules:\n  - name: r10\n    match: {}\n    action: {notify: {message: hi}}\n    guards: {timeout: 0}\n",
            "r10",
            "guards.timeout",
            "more than zero",
        ),
        (
            "rules:\n  - name: r11\n    match: {}\n    action: {notify: {message: hi}}\n"
            "    guards: {cooldown: 1.0e+999}\n",
            "r11",
            "guards.cooldown",
            "finite",
        ),
        # for: {count} counts data points; an alert's deliveries are Alertmanager's schedule, not data.
        (
            "rules:\n  - name: r12\n    match: {kind: alert}\n    for: {count: 2, window: 1m}\n"
            "    action: {notify: {message: hi}}\n",
            "r12",
            "for",
            "anomaly or drift",
        ),
        (
            "rules:\n  - name: r13\n    match: {labels: {a: b}}\n    for: {count: 2, window: 1m}\n"
            "    action: {notify: {message: hi}}\n",
            "r13",
            "for",
            "anomaly or drift",
        ),
    ],
)
def test_errors_name_file_rule_and_field(tmp_path: Path, body: str, rule: str, field: str, words: str) -> None:
    path = write(tmp_path, "bad.yaml", body)
    with pytest.raises(ConfigError) as info:
        load_rules(tmp_path / "rules")
    msg = str(info.value)
    assert str(path) in msg
    assert f"rule {rule!r}" in msg
    assert f"field {field!r}" in msg
    assert words in msg


def test_missing_playbook_and_duplicate_names(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "rules:\n  - name: same\n    match: {}\n    action: {playbook: nope.yml}\n")
    with pytest.raises(ConfigError, match=r"playbook 'nope\.yml' not found"):
        load_rules(tmp_path / "rules", REPO / "playbooks")
    write(tmp_path, "a.yaml", "rules:\n  - name: same\n    match: {}\n    action: {notify: {message: a}}\n")
    write(tmp_path, "b.yaml", "rules:\n  - name: same\n    match: {}\n    action: {notify: {message: b}}\n")
    with pytest.raises(ConfigError, match="duplicate rule name"):
        load_rules(tmp_path / "rules")


def test_shipped_rules_are_valid() -> None:
    rules = load_rules(REPO / "rules", REPO / "playbooks")
    assert {r.name for r in rules} >= {"restart-on-latency-anomaly", "diagnostics-on-alert"}
