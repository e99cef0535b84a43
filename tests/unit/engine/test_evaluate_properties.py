"""Property tests on the pure engine: whatever findings arrive in whatever order, the brakes hold.

Each example is a random timeline of sightings, resolutions and source outages,
replayed through :class:`Simulation` (the store's view kept in memory), against
rules with random guards.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from aiopsd.engine.replay import Simulation
from aiopsd.engine.rules import RateBudget, Rule
from aiopsd.models import Decision, Finding, FindingKind, FindingStatus, Outcome, SkipReason

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOSTS = ["web-1", "web-2", "web-3"]
SKIP_CODES = frozenset(r.value for r in SkipReason)


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    guards: dict[str, Any] = {
        "cooldown": draw(st.sampled_from([0, 30, 120, 600])),
        "stale_after": draw(st.sampled_from([60, 300, 900])),
    }
    if draw(st.booleans()):
        guards["max_per_window"] = {"count": draw(st.integers(1, 3)), "window": draw(st.sampled_from([60, 600]))}
    if draw(st.booleans()):
        guards["max_hosts"] = draw(st.integers(1, 2))
    spread = draw(st.booleans())
    kind = draw(st.sampled_from([None, "anomaly", "alert"]))
    # A count needs data points to count: only anomaly/drift rules may use it.
    fors: list[Any] = [0, 30, {"count": 2, "window": 60}] if kind == "anomaly" else [0, 30]
    return Rule.model_validate(
        {
            "name": f"r{draw(st.integers(0, 2))}",
            "match": {"kind": kind, "labels": {"service": draw(st.sampled_from(["web", "~w.*", "!db"]))}},
            "for": draw(st.sampled_from(fors)),
            "action": {
                "playbook": "x.yml",
                "targets": ["{{ labels.host }}", "{{ labels.peer }}"] if spread else "{{ labels.host }}",
            },
            "on_resolved": {"notify": {"message": "ok"}} if draw(st.booleans()) else None,
            "guards": guards,
        }
    )


@st.composite
def timelines(draw: st.DrawFn) -> list[tuple[int, str, Any]]:
    """(seconds since T0, event, payload) in time order."""
    events: list[tuple[int, str, Any]] = []
    t = 0
    for _ in range(draw(st.integers(1, 40))):
        t += draw(st.integers(0, 200))
        kind = draw(st.sampled_from(["see", "see", "see", "resolve", "down", "up", "tick"]))
        if kind in ("see", "resolve"):
            events.append(
                (
                    t,
                    kind,
                    (
                        draw(st.integers(0, 5)),
                        draw(st.sampled_from(["anomaly", "alert"])),
                        draw(st.sampled_from(HOSTS)),
                        draw(st.sampled_from(HOSTS)),
                        draw(st.sampled_from(["web", "db"])),
                        draw(st.floats(0.5, 3.0)),
                    ),
                )
            )
        else:
            events.append((t, kind, None))
    return events


Snapshot = tuple[datetime, dict[str, str], dict[str, Finding], list[Decision]]


def run(
    rule_list: list[Rule], timeline: list[tuple[int, str, Any]], budget: RateBudget | None
) -> tuple[Simulation, list[Snapshot]]:
    """Replay the timeline; each snapshot is what one tick saw and the decisions that tick made."""
    unique = {r.name: r for r in rule_list}
    sim = Simulation(list(unique.values()), global_budget=budget)
    down: dict[str, str] = {}
    snapshots = []
    first: dict[str, datetime] = {}
    labels_of: dict[str, dict[str, str]] = {}
    for t, kind, data in timeline:
        now = T0 + timedelta(seconds=t)
        if kind == "down":
            down = {"latency": "connection refused"}
        elif kind == "up":
            down = {}
        elif kind in ("see", "resolve"):
            n, fkind, host, peer, service, score = data
            fid = f"{fkind}-{n}"
            labels = labels_of.setdefault(fid, {"service": service, "host": host, "peer": peer})
            if kind == "see" and fkind == "anomaly" and "latency" in down:
                pass  # a down source produces no sightings
            else:
                sim.observe(
                    Finding(
                        id=fid,
                        kind=FindingKind(fkind),
                        source="latency" if fkind == "anomaly" else "alertmanager",
                        labels=labels,
                        score=score,
                        status=FindingStatus.FIRING if kind == "see" else FindingStatus.RESOLVED,
                        starts_at=first.setdefault(fid, now),
                        last_seen=now,
                        sightings=(now.timestamp(),),
                    )
                )
        seen = dict(sim.findings)
        snapshots.append((now, dict(down), seen, sim.tick(now, down)))
    return sim, snapshots


COMMON = settings(max_examples=150, deadline=None)


@COMMON
@given(
    st.lists(rules(), min_size=1, max_size=3),
    timelines(),
    st.one_of(st.none(), st.builds(RateBudget, count=st.integers(1, 4), window=st.sampled_from([60.0, 600.0]))),
)
def test_brakes_hold_over_any_timeline(
    rule_list: list[Rule], timeline: list[tuple[int, str, Any]], budget: RateBudget | None
) -> None:
    sim, snapshots = run(rule_list, timeline, budget)
    rules_by_name = {r.name: r for r in sim.rules}
    acts = [d for d in sim.decisions if d.outcome == Outcome.ACT and d.code == "act"]
    all_acts = [d for d in sim.decisions if d.outcome == Outcome.ACT]

    # Never two actions for one (rule, finding), nor two on_resolved.
    keys = [(d.rule, d.finding_id, d.code) for d in all_acts]
    assert len(keys) == len(set(keys))
    # A decision id is never reused for a different outcome.
    ids: dict[str, tuple[str, str]] = {}
    for d in sim.decisions:
        assert ids.setdefault(d.id, (d.rule, d.code)) == (d.rule, d.code)

    # Every skip says why, in a code and in words.
    for d in sim.decisions:
        assert d.code and d.reason.strip()
        if d.outcome == Outcome.SKIP:
            assert d.code != "act"
            assert d.code in SKIP_CODES, f"{d.code} is not a SkipReason (the page has no label for it)"

    # Several events can share one instant: judge each act against the tick that made it.
    for d, down, findings in (
        (d, down, findings)
        for _, down, findings, made in snapshots
        for d in made
        if d.outcome == Outcome.ACT and d.code == "act"
    ):
        f = findings[d.finding_id]
        rule = rules_by_name[d.rule]
        # No action from a down source, stale data or a resolved finding.
        assert not (f.kind == FindingKind.ANOMALY and f.source in down)
        assert f.kind == FindingKind.ALERT or (d.decided_at - f.last_seen).total_seconds() <= rule.guards.stale_after
        assert f.status == FindingStatus.FIRING
        # Blast radius.
        if rule.guards.max_hosts is not None:
            assert len(d.targets) <= rule.guards.max_hosts

    # Cooldown per (rule, target) between act decisions.
    last: dict[tuple[str, str], datetime] = {}
    for d in sorted(all_acts, key=lambda d: d.decided_at):
        cooldown = rules_by_name[d.rule].guards.cooldown
        for target in d.targets or ("*",):
            prev = last.get((d.rule, target))
            if d.code == "act" and prev is not None:
                assert (d.decided_at - prev).total_seconds() >= cooldown
            last[(d.rule, target)] = d.decided_at

    # Per-rule and global rate budgets: no sliding window ever holds more than allowed.
    times: dict[str, list[datetime]] = defaultdict(list)
    for d in all_acts:
        times[d.rule].append(d.decided_at)
    for name, ts in times.items():
        mpw = rules_by_name[name].guards.max_per_window
        if mpw is not None:
            acts_only = sorted(d.decided_at for d in acts if d.rule == name)
            for i, start in enumerate(acts_only):
                in_window = [x for x in acts_only[i:] if (x - start).total_seconds() < mpw.window]
                assert len(in_window) <= mpw.count
        assert ts == sorted(ts)
    if budget is not None:
        every = sorted(d.decided_at for d in all_acts)
        for i, start in enumerate(every):
            assert len([x for x in every[i:] if (x - start).total_seconds() < budget.window]) <= budget.count


@COMMON
@given(st.lists(rules(), min_size=1, max_size=3), timelines())
def test_on_resolved_only_follows_an_action_on_a_resolved_finding(
    rule_list: list[Rule], timeline: list[tuple[int, str, Any]]
) -> None:
    sim, _ = run(rule_list, timeline, None)
    acted = {(d.rule, d.finding_id) for d in sim.decisions if d.code == "act"}
    for d in sim.decisions:
        if d.code == "on_resolved":
            assert (d.rule, d.finding_id) in acted
            assert sim.findings[d.finding_id].status == FindingStatus.RESOLVED


@COMMON
@given(st.lists(rules(), min_size=1, max_size=3), timelines())
def test_replaying_the_same_evaluation_twice_decides_nothing_new(
    rule_list: list[Rule], timeline: list[tuple[int, str, Any]]
) -> None:
    """Duplicate deliveries / repeated ticks at the same instant never add decisions."""
    sim, snapshots = run(rule_list, timeline, None)
    if snapshots:
        now, down, _, _ = snapshots[-1]
        assert sim.tick(now, down) == []
