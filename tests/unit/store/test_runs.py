"""Runs in the store: claiming, guarded status transitions, retention (SQLite; PostgreSQL in tests/service)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from aiopsd.daemon import dispatcher
from aiopsd.engine import evaluate
from aiopsd.engine.history import engine_state, retention_floor
from aiopsd.engine.rules import RateBudget, Rule
from aiopsd.errors import StoreUnavailableError
from aiopsd.models import FindingStatus, RunStatus
from aiopsd.sources.alertmanager import IncomingAlert
from aiopsd.store import StateStore
from aiopsd.store import tables as t
from aiopsd.store.retention import prune, prune_run_dirs
from tests.support import make_runtime

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def queue(store: StateStore, target: str, *, n: int = 1, rule: str = "r", at: datetime = T0) -> list[int]:
    """Put ``n`` pending runs for ``target`` in the queue (as record_decisions would); return their ids."""
    ids = []
    with store.write() as conn:
        for _ in range(n):
            res = conn.execute(
                t.action_runs.insert().values(
                    decision_id=uuid.uuid4().hex,
                    rule=rule,
                    kind="notify",
                    targets=[target],
                    status=str(RunStatus.PENDING),
                    attempt=1,
                    dry_run=False,
                    action={},
                    timeout=60.0,
                    max_attempts=1,
                    retry_backoff=1.0,
                    created_at=at.timestamp(),
                    not_before=at.timestamp(),
                    output="",
                    error="",
                )
            )
            key = res.inserted_primary_key
            assert key is not None
            ids.append(int(key[0]))
    return ids


def check_free_target_found_behind_a_busy_queue(store: StateStore) -> None:
    now = T0 + timedelta(seconds=2)
    busy = queue(store, "busy", n=41)
    [first] = store.claim_runnable(now, limit=1, owner="other")  # "busy" is now running in the store
    assert first.run.id == busy[0]
    [free] = queue(store, "free", at=T0 + timedelta(seconds=1))
    assert [c.run.id for c in store.claim_runnable(now, limit=1, owner="me")] == [free]
    # The same when the busy target is busy in this process (the dispatcher's own running set).
    [free2] = queue(store, "free2", at=T0 + timedelta(seconds=1))
    claimed = store.claim_runnable(now, limit=2, owner="me", busy_targets=frozenset({"busy", "free"}))
    assert [c.run.id for c in claimed] == [free2]


def test_claim_finds_a_free_target_behind_a_long_queue_for_a_busy_one(store: StateStore) -> None:
    check_free_target_found_behind_a_busy_queue(store)


def check_finish_never_overwrites_a_run_that_moved_on(store: StateStore) -> None:
    """A result arriving after the run was marked interrupted is not applied, and the lost race is audited."""
    [run_id] = queue(store, "h1")
    [claim] = store.claim_runnable(T0, limit=1, owner="replica-a")
    assert store.mark_interrupted(T0 + timedelta(seconds=1)) == 1
    assert not store.finish_run(
        run_id, RunStatus.SUCCEEDED, finished_at=T0 + timedelta(seconds=2), rc=0, output="ok", owner="replica-a"
    )
    assert not store.retry_run(run_id, not_before=T0, output="", error="x", owner="replica-a")
    run = store.get_run(run_id)
    assert run is not None and run.status == RunStatus.INTERRUPTED
    rejected = [e for e in store.audit_entries() if e["kind"] == "run_result_rejected"]
    assert [e["event"]["result"]["status"] for e in rejected] == ["retry", "succeeded"]
    assert rejected[-1]["event"]["run_status"] == "interrupted"
    assert store.verify_audit().ok
    # Another owner's result is refused too, even while the run is running.
    [other] = queue(store, "h2")
    store.claim_runnable(T0, limit=1, owner="replica-a")
    assert not store.finish_run(other, RunStatus.FAILED, finished_at=T0, rc=1, output="", owner="replica-b")
    assert store.finish_run(other, RunStatus.SUCCEEDED, finished_at=T0, rc=0, output="", owner="replica-a")
    assert claim.run.id == run_id


def test_finish_never_overwrites_a_run_that_moved_on(store: StateStore) -> None:
    check_finish_never_overwrites_a_run_that_moved_on(store)


class FlakyStore:
    """Wraps finish_run to fail ``n`` times like a full disk or a failover would (then the real store)."""

    def __init__(self, store: StateStore, n: int) -> None:
        self.store, self.left, self.calls = store, n, 0
        self.real = store.finish_run

    def __call__(self, *args: Any, **kw: Any) -> bool:
        self.calls += 1
        if self.left > 0:
            self.left -= 1
            raise StoreUnavailableError("state store write failed: OperationalError: disk full")
        return self.real(*args, **kw)


def test_result_is_retried_until_stored_and_the_failure_is_visible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(dispatcher, "STORE_RETRY_FIRST", 0.05)
    rt = make_runtime(tmp_path)
    try:
        d = dispatcher.Dispatcher(rt)
        [run_id] = queue(rt.store, "h1")
        flaky = FlakyStore(rt.store, 3)
        monkeypatch.setattr(rt.store, "finish_run", flaky)
        d.start_due(T0)
        [(_, fut, _)] = d.running.values()
        fut.result(timeout=30)
        run = rt.store.get_run(run_id)
        assert run is not None and run.status == RunStatus.SUCCEEDED
        assert flaky.calls == 4
        assert d.running == {}  # slot and target lock released once stored
        assert rt.metrics.registry.get_sample_value("aiopsd_action_result_store_errors_total") == 3
        assert rt.metrics.registry.get_sample_value("aiopsd_action_results_unstored") == 0
        assert "could not be stored" in caplog.text and "disk full" in caplog.text
        d.shutdown(0)
    finally:
        rt.store.close()


# ------------------------------------------------------------------------------ retention
DAY = 86400.0


def story(store: StateStore, fp: str, at: datetime, *, resolve: bool, finish: bool = True) -> int:
    """An alert, its finding, an act decision and its run at ``at``; resolved and finished if asked."""
    rule = Rule.model_validate(
        {"name": "r", "match": {"kind": "alert"}, "action": {"playbook": "x.yml", "targets": "{{ labels.host }}"}}
    )
    store.accept_alerts(
        [
            IncomingAlert(
                fingerprint=fp,
                status="firing",
                starts_at=at.isoformat(),
                ends_at=None,
                labels={"alertname": "A", "host": fp},
                annotations={},
                generator_url=None,
                starts_at_epoch=at.timestamp(),
            )
        ],
        received_at=at.timestamp(),
        receiver="x",
        group_key="g",
    )
    findings = [f for f in store.active_findings() if f.labels["host"] == fp]
    state = engine_state(store, [rule], at, sources_down={})
    [decision] = evaluate(findings, [rule], state, at)
    store.record_decisions([decision], {"r": rule})
    [run_id] = [r.id for r in store.runs_for_decisions([decision.id])]
    store.claim_runnable(at, limit=10, owner="me")
    if finish:
        store.finish_run(run_id, RunStatus.SUCCEEDED, finished_at=at, rc=0, output="x" * 1000, owner="me")
    if resolve:
        store.upsert_findings(
            [findings[0].model_copy(update={"status": FindingStatus.RESOLVED, "last_seen": at + timedelta(minutes=5)})]
        )
    return run_id


def test_prune_deletes_old_history_keeps_unfinished_and_firing_and_the_audit_chain_verifies(
    store: StateStore, tmp_path: Path
) -> None:
    now = T0 + timedelta(days=100)
    old_done = story(store, "old-done", T0, resolve=True)
    old_running = story(store, "old-running", T0, resolve=True, finish=False)
    old_firing = story(store, "old-firing", T0, resolve=False)
    recent = story(store, "recent", now - timedelta(days=1), resolve=True)
    before = store.verify_audit()
    assert before.ok and before.anchored_at is None

    result = prune(store, now, 30 * DAY)

    assert (result.runs, result.decisions, result.findings, result.alerts) == (1, 1, 1, 1)
    assert {r.id for r in store.list_runs()} == {old_running, old_firing, recent}
    assert store.get_run(old_done) is None
    assert {f.labels["host"] for f in store.list_findings()} == {"old-running", "old-firing", "recent"}
    after = store.verify_audit()
    assert after.ok and after.anchored_at == result.audit_starts_at > 1
    assert after.entries < before.entries + 1
    [entry] = [e for e in store.audit_entries(limit=1000) if e["kind"] == "pruned"]
    assert entry["event"]["runs"] == 1
    # A second prune has nothing older to remove and keeps the anchor valid.
    assert prune(store, now, 30 * DAY).total == 0
    assert store.verify_audit().ok
    # The kept chain still detects a change, and a deletion right after the anchor.
    with store.write() as conn:
        conn.execute(t.audit_log.delete().where(t.audit_log.c.seq == result.audit_starts_at))
    broken = store.verify_audit()
    assert not broken.ok and broken.first_bad == result.audit_starts_at


def test_prune_tampered_entry_after_a_prune_is_still_named(store: StateStore) -> None:
    now = T0 + timedelta(days=100)
    story(store, "old", T0, resolve=True)
    story(store, "recent", now - timedelta(days=1), resolve=True)
    start = prune(store, now, 30 * DAY).audit_starts_at
    with store.write() as conn:
        conn.execute(update(t.audit_log).where(t.audit_log.c.seq == start + 1).values(event='{"forged":1}'))
    broken = store.verify_audit()
    assert not broken.ok and broken.first_bad == start + 1 and "changed" in broken.problem


def test_retention_never_shorter_than_what_guards_look_back_on() -> None:
    rule = Rule.model_validate(
        {
            "name": "r",
            "match": {"kind": "alert"},
            "action": {"playbook": "x.yml"},
            "guards": {"cooldown": "60d", "max_per_window": {"count": 1, "window": "7d"}},
        }
    )
    assert retention_floor([rule]) == 60 * DAY
    assert retention_floor([], RateBudget(count=1, window=90 * DAY)) == 90 * DAY


def test_prune_run_dirs_removes_old_finished_keeps_unfinished(store: StateStore, tmp_path: Path) -> None:
    import os

    runs_dir = tmp_path / "runs"
    now = T0 + timedelta(days=100)
    done = story(store, "done", T0, resolve=True)
    running = story(store, "running", T0, resolve=True, finish=False)
    for run_id in (done, running):
        p = runs_dir / f"{run_id:06d}-1"
        p.mkdir(parents=True)
        os.utime(p, (T0.timestamp(), T0.timestamp()))
    (runs_dir / "000999-1").mkdir()  # recent: kept
    assert prune_run_dirs(runs_dir, store, now, 30 * DAY) == 1
    assert sorted(p.name for p in runs_dir.iterdir()) == sorted([f"{running:06d}-1", "000999-1"])


def test_audit_verify_cli_passes_after_a_prune_and_still_catches_a_tamper(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from aiopsd.cli import create_app
    from tests.support import write_config

    cfg = write_config(tmp_path)
    s = StateStore(yaml_url(cfg))
    try:
        now = T0 + timedelta(days=100)
        story(s, "old", T0, resolve=True)
        story(s, "recent", now - timedelta(days=1), resolve=True)
        start = prune(s, now, 30 * DAY).audit_starts_at
        r = CliRunner().invoke(create_app(), ["audit", "verify", "--config", str(cfg)])
        assert r.exit_code == 0 and f"from entry {start}" in r.stdout, r.stdout
        with s.write() as conn:
            conn.execute(update(t.audit_log).where(t.audit_log.c.seq == start + 2).values(at=0.5))
        r = CliRunner().invoke(create_app(), ["audit", "verify", "--config", str(cfg)])
        assert r.exit_code == 1 and f"at entry {start + 2}" in r.stderr
    finally:
        s.close()


def yaml_url(cfg: Path) -> str:
    import yaml

    return str(yaml.safe_load(cfg.read_text())["state_url"])
