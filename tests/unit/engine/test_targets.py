"""Targets are literal hosts: patterns from labels are refused with ``unsafe_target``, never expanded."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from aiopsd.engine import EngineState, Rule, evaluate
from aiopsd.engine.targets import Target, UnsafeTarget, parse_target, parse_targets
from aiopsd.models import Finding, FindingKind, FindingStatus, Outcome

NOW = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("web-1", Target("web-1")),
        ("WEB-1.Example.COM.", Target("web-1.example.com")),
        ("db_2", Target("db_2")),
        ("10.0.0.7", Target("10.0.0.7")),
        ("10.0.0.7:9100", Target("10.0.0.7", 9100)),
        ("db-1:2222", Target("db-1", 2222)),
        ("::1", Target("::1")),
        ("2001:DB8:0:0::1", Target("2001:db8::1")),
        ("[2001:db8::1]:9100", Target("2001:db8::1", 9100)),
        ("localhost", Target("localhost")),
    ],
)
def test_literal_hosts_are_accepted_in_canonical_form(value: str, expected: Target) -> None:
    assert parse_target(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "web[01:50].prod",
        "web*",
        "web?",
        "all",
        "ALL",
        "ungrouped",
        "!web-1",
        "&web-1",
        "~web.*",
        "web-1,evil",
        "localhost,evil",
        "web-1 evil",
        "web-1\nevil",
        "@hosts.txt",
        "web-1:",
        "web-1:0",
        "web-1:65536",
        "web-1:22:33",
        "db:port",
        "[::1]",
        "[::1]:x",
        "fe80::1%eth0",
        "",
        " web-1",
        "web-1\x00",
        "wéb-1",
        "-web",
        "web-.x",
        "a" * 254,
        "../etc/passwd",
        "/etc/passwd",
        "{{ x }}",
        "web-1;id",
        "$(id)",
        "group:&other",
        "web-1:2222:22",
    ],
)
def test_patterns_and_garbage_are_unsafe(value: str) -> None:
    with pytest.raises(UnsafeTarget):
        parse_target(value)


def test_one_host_with_two_ports_is_unsafe_and_duplicates_collapse() -> None:
    assert parse_targets(["DB-1", "db-1:22"]) == (("db-1",), {"db-1": 22})
    with pytest.raises(UnsafeTarget, match="two ports"):
        parse_targets(["db-1:22", "db-1:2222"])


def rule(action: dict[str, Any], **guards: Any) -> Rule:
    return Rule.model_validate({"name": "r", "match": {"kind": "alert"}, "action": action, "guards": guards})


def alert(**labels: str) -> Finding:
    return Finding(
        id="f1",
        kind=FindingKind.ALERT,
        source="alertmanager",
        labels=labels,
        score=1.0,
        status=FindingStatus.FIRING,
        starts_at=NOW,
        last_seen=NOW,
    )


def test_a_host_range_in_a_label_is_skipped_as_unsafe_target_not_expanded() -> None:
    [d] = evaluate(
        [alert(host="web[01:50].prod")],
        [rule({"playbook": "x.yml", "targets": "{{ labels.host }}"}, max_hosts=1)],
        EngineState(),
        NOW,
    )
    assert (d.outcome, d.code) == (Outcome.SKIP, "unsafe_target")
    assert "'web[01:50].prod'" in d.reason and d.targets == ()


def test_a_comma_from_a_label_does_not_split_into_more_hosts() -> None:
    [d] = evaluate(
        [alert(host="localhost,evil")],
        [rule({"playbook": "x.yml", "targets": "{{ labels.host }}"})],
        EngineState(),
        NOW,
    )
    assert d.code == "unsafe_target"


def test_plain_rule_text_may_still_list_hosts_and_lists_render_one_host_each() -> None:
    [d] = evaluate(
        [alert(host="b", peer="c")],
        [rule({"playbook": "x.yml", "targets": ["a, d", "{{ labels.host }}", "{{ labels.peer }}"]})],
        EngineState(),
        NOW,
    )
    assert d.outcome == Outcome.ACT and d.targets == ("a", "d", "b", "c")


def test_instance_port_becomes_ansible_port_and_the_host_is_the_cooldown_key() -> None:
    r = rule({"playbook": "x.yml", "targets": "{{ labels.instance }}"}, cooldown="10m")
    [d] = evaluate([alert(instance="DB-1:2222")], [r], EngineState(), NOW)
    assert d.targets == ("db-1",) and d.action["target_ports"] == {"db-1": 2222}
    state = EngineState(last_action={("r", "db-1"): NOW})
    [again] = evaluate([alert(instance="db-1:9100")], [r], state, NOW)
    assert again.code == "cooldown"


def test_job_template_limit_is_a_literal_host_and_counts_for_max_hosts() -> None:
    jt = {"job_template": {"id": 7, "limit": "{{ labels.host }}"}}
    [bad] = evaluate([alert(host="all")], [rule(jt, max_hosts=1)], EngineState(), NOW)
    assert bad.code == "unsafe_target"
    [star] = evaluate([alert(host="web*")], [rule(jt)], EngineState(), NOW)
    assert star.code == "unsafe_target"
    [ok] = evaluate([alert(host="web-1:22")], [rule(jt, max_hosts=1)], EngineState(), NOW)
    assert ok.outcome == Outcome.ACT and ok.targets == ("web-1",)
    assert ok.action["job_template"]["limit"] == "web-1"
    wide = {"job_template": {"id": 7, "limit": ["{{ labels.host }}", "web-2"]}}
    [many] = evaluate([alert(host="web-1")], [rule(wide, max_hosts=1)], EngineState(), NOW)
    assert many.code == "max_hosts"


def test_job_template_without_limit_cannot_satisfy_max_hosts() -> None:
    [d] = evaluate([alert(host="web-1")], [rule({"job_template": {"id": 7}}, max_hosts=5)], EngineState(), NOW)
    assert d.code == "max_hosts" and "whole inventory" in d.reason
    [free] = evaluate([alert(host="web-1")], [rule({"job_template": {"id": 7}})], EngineState(), NOW)
    assert free.outcome == Outcome.ACT


def test_template_vars_are_passed_as_written_never_rendered_with_labels() -> None:
    r = rule(
        {
            "playbook": "x.yml",
            "targets": "localhost",
            "extra_vars": {"who": "{{ labels.host }}"},
            "template_vars": {"home": "{{ lookup('env', 'HOME') }}"},
        }
    )
    [d] = evaluate([alert(host="web-1")], [r], EngineState(), NOW)
    assert d.action["extra_vars"] == {"who": "web-1"}
    assert d.action["template_vars"] == {"home": "{{ lookup('env', 'HOME') }}"}


def test_a_variable_cannot_be_both_literal_and_template() -> None:
    with pytest.raises(ValueError, match="either in extra_vars or in template_vars"):
        rule({"playbook": "x.yml", "extra_vars": {"a": 1}, "template_vars": {"a": "{{ b }}"}})
