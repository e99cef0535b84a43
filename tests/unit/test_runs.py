"""Runs in the store: claiming, guarded status transitions, retention (SQLite; PostgreSQL in tests/service)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aiopsd.daemon import dispatcher
from aiopsd.errors import StoreUnavailableError
from aiopsd.models import RunStatus
from aiopsd.store import StateStore
from aiopsd.store import tables as t
from tests.support import make_runtime

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    s = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()


def queue(store: StateStore, target: str, *, n: int = 1, rule: str = "r", at: datetime = T0) -> list[int]:
    """Put ``n`` pending runs for ``target`` in the queue (as record_decisions would); return their ids."""
    ids = []
    with store.write() as conn:
        for _ in range(n):
            res = conn.execute(t.action_runs.insert().values(
                decision_id=uuid.uuid4().hex, rule=rule, kind="notify", targets=[target],
                status=str(RunStatus.PENDING), attempt=1, dry_run=False, action={}, timeout=60.0,
                max_attempts=1, retry_backoff=1.0, created_at=at.timestamp(), not_before=at.timestamp(),
                output="", error=""))
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
    assert not store.finish_run(run_id, RunStatus.SUCCEEDED, finished_at=T0 + timedelta(seconds=2), rc=0,
                                output="ok", owner="replica-a")
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


def test_result_is_retried_until_stored_and_the_failure_is_visible(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
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
