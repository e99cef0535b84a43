"""Rule files from hypothesis: any YAML either loads or raises a ConfigError naming the file; no crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiopsd.engine import load_rule_file
from aiopsd.errors import ConfigError

VALID: dict[str, Any] = {
    "name": "restart",
    "match": {"kind": "anomaly", "labels": {"host": "~web-.*", "env": "!dev"}, "min_score": 1.5},
    "for": {"count": 2, "window": "1m"},
    "action": {"playbook": "restart_service.yml", "targets": "{{ labels.host }}", "extra_vars": {"a": 1}},
    "on_resolved": {"notify": {"message": "{{ labels.host }} ok"}},
    "guards": {
        "cooldown": "10m",
        "max_per_window": {"count": 3, "window": "1h"},
        "max_hosts": 1,
        "concurrency": 1,
        "timeout": "2m",
        "retries": 1,
        "retry_backoff": "5s",
        "require_approval": False,
        "dry_run": True,
        "circuit_breaker": {"failures": 3, "reset_after": "1h"},
        "stale_after": "15m",
    },
}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-5, 10**6)
    | st.floats(allow_nan=True)
    | st.text(max_size=12)
    | st.sampled_from(
        ["5m", "1h30m", "~(", "{{ x", "{{ labels.x }}", "../x.yml", "/etc/passwd", "-1s", "playbook", "notify"]
    )
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, (*prefix, k))
    return out


ALL_PATHS = paths(VALID)[1:]


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    import copy

    rule = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(ALL_PATHS))
        parent: Any = rule
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue
        if draw(st.booleans()):
            parent[path[-1]] = draw(values)
        else:
            parent.pop(path[-1], None)
    return {"rules": [rule]}


def test_the_reference_rule_is_valid(tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text(yaml.safe_dump({"rules": [VALID]}))
    [rule] = load_rule_file(f)
    assert rule.guards.cooldown == 600 and rule.on_resolved is not None


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(doc=st.one_of(mutated(), values, st.text(max_size=80)))
def test_any_rule_file_loads_or_raises_a_config_error(tmp_path_factory: pytest.TempPathFactory, doc: Any) -> None:
    f = tmp_path_factory.mktemp("rules") / "fuzz.yaml"
    if isinstance(doc, str):
        f.write_text(doc)
    else:
        try:
            f.write_text(yaml.safe_dump(doc))
        except (yaml.YAMLError, ValueError):
            return
    try:
        load_rule_file(f)
    except ConfigError as exc:
        assert str(f) in str(exc)
        assert exc.file == str(f)
