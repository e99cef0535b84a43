"""Load every ``*.yaml`` rule file of a directory; errors name the file, the rule and the field."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from aiopsd.engine.actions import ACTIONS, Refs
from aiopsd.engine.rules import Rule, RuleFile
from aiopsd.engine.verify import CHECK_KINDS
from aiopsd.errors import ConfigError, clean_msg
from aiopsd.yamlfile import read_yaml


def _rule_name(raw: Any, loc: tuple[int | str, ...]) -> str | None:
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        try:
            name = raw["rules"][loc[1]].get("name")
        except (KeyError, IndexError, TypeError, AttributeError):
            name = None
        return str(name) if name else f"#{loc[1] + 1}"
    return None


def load_rule_file(path: Path) -> list[Rule]:
    label = str(path)
    raw = read_yaml(path, what="rule file")
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise ConfigError("a rule file is a mapping with a 'rules:' list", file=label)
    try:
        return RuleFile.model_validate(raw).rules
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        rule = _rule_name(raw, loc)
        # Drop the rules.<n> prefix and the union tag pydantic puts after an action or a verify check.
        parts = [str(p) for p in (loc[2:] if rule else loc)]
        field_parts = [
            p
            for i, p in enumerate(parts)
            if not (i > 0 and parts[i - 1] in {"action", "on_resolved", "on_not_verified"} and p in ACTIONS)
            and not (i > 0 and parts[i - 1] == "check" and p in CHECK_KINDS)
        ]
        raise ConfigError(clean_msg(err["msg"]), file=label, rule=rule, field=".".join(field_parts) or None) from None


def load_rules(
    rules_dir: Path, playbooks_dir: Path | None = None, channels: Collection[str] | None = None
) -> list[Rule]:
    """All rules under ``rules_dir`` (``*.yaml`` / ``*.yml``, sorted), checked as one set.

    With ``channels`` (the config's notify channel names), a notify action naming
    another channel is refused here, naming file, rule and field.
    """
    if not rules_dir.is_dir():
        raise ConfigError("rules directory not found", file=str(rules_dir))
    refs = Refs(playbooks_dir=playbooks_dir, channels=channels)
    rules: list[Rule] = []
    seen: dict[str, Path] = {}
    files = sorted([*rules_dir.glob("*.yaml"), *rules_dir.glob("*.yml")])
    for path in files:
        for rule in load_rule_file(path):
            if rule.name in seen:
                raise ConfigError(
                    f"duplicate rule name, first defined in {seen[rule.name]}",
                    file=str(path),
                    rule=rule.name,
                    field="name",
                )
            seen[rule.name] = path
            _check_refs(rule, path, refs)
            rules.append(rule)
    return rules


def _check_refs(rule: Rule, path: Path, refs: Refs) -> None:
    """Each action's own load-time check: a playbook that exists, a notify channel the config has."""
    for field, action in (
        ("action", rule.action),
        ("on_resolved", rule.on_resolved),
        ("on_not_verified", rule.on_not_verified),
    ):
        problem = None if action is None else action.check_refs(refs)
        if problem is not None:
            raise ConfigError(problem[1], file=str(path), rule=rule.name, field=f"{field}.{problem[0]}")
