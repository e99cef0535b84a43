"""Group commit: every request of a group is committed before its answer, and one bad request fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from aiopsd.daemon.http.intake import GroupCommitter, commit_group
from aiopsd.errors import StoreUnavailableError
from aiopsd.models import Finding
from aiopsd.sources.alertmanager import IncomingAlert, WebhookAlert
from aiopsd.store import AcceptResult, StateStore
from aiopsd.store.state import AlertBatch


def incoming(fp: str) -> IncomingAlert:
    return WebhookAlert.model_validate(
        {
            "status": "firing",
            "labels": {"alertname": "A", "fp": fp},
            "startsAt": "2026-01-01T00:00:00Z",
            "fingerprint": fp,
        }
    ).to_incoming()


@dataclass(frozen=True)
class Poison:
    """A delivery that breaks while its finding is built, the way a bug hit by one payload would."""

    fingerprint: str = "poison"
    status: str = "firing"
    starts_at: str = "2026-01-01T00:00:00Z"
    ends_at: str | None = None
    generator_url: str | None = None
    ends_at_epoch: float | None = None

    @property
    def labels(self) -> Mapping[str, str]:
        return {"alertname": "Poison"}

    @property
    def annotations(self) -> Mapping[str, str]:
        return {}

    def finding(self, finding_id: str, received_at: float, episode: int) -> Finding:
        raise ValueError("cannot build this finding")


def batch(*alerts: Any, at: float = 1.0) -> AlertBatch:
    return AlertBatch(list(alerts), received_at=at, receiver="am", group_key="g")


def stored(url: str) -> set[str]:
    """Fingerprints stored, as a second process would read them (its own connection)."""
    with StateStore(url, create=False) as other:
        return {a["fingerprint"] for a in other.list_alerts(limit=1000)}


def test_a_bad_request_in_a_group_fails_alone_and_the_others_commit(store: StateStore) -> None:
    out = commit_group(store, [batch(incoming("a")), batch(Poison()), batch(incoming("b"), incoming("c"))])
    assert out[0] == AcceptResult(accepted=1, duplicates=0, opened=1)
    assert isinstance(out[1], StoreUnavailableError) and "ValueError" in str(out[1])
    assert out[2] == AcceptResult(accepted=2, duplicates=0, opened=2)
    assert stored(store.url) == {"a", "b", "c"}
    assert store.verify_audit().ok


def test_when_the_store_is_down_the_whole_group_fails_without_a_retry_per_request(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def down(batches: list[AlertBatch], on_settled: Any = None) -> list[AcceptResult]:
        calls.append(len(batches))
        raise StoreUnavailableError("state store write failed: database is locked") from OperationalError(
            "BEGIN", {}, Exception("database is locked")
        )

    monkeypatch.setattr(store, "accept_alert_batches", down)
    out = commit_group(store, [batch(incoming("a")), batch(incoming("b"))])
    assert all(isinstance(o, StoreUnavailableError) for o in out)
    assert calls == [2]


def test_concurrent_submits_are_each_committed_before_they_are_answered(store: StateStore) -> None:
    committer = GroupCommitter(store)

    async def one(i: int) -> tuple[str, AcceptResult | BaseException, bool]:
        fp = f"fp{i}"
        try:
            res: AcceptResult | BaseException = await committer.submit(
                batch(Poison(fingerprint=fp) if i == 7 else incoming(fp), at=float(i))
            )
        except StoreUnavailableError as exc:
            res = exc
        # Right after the answer, a new connection sees the alert (or, for the failed one, not).
        return fp, res, fp in stored(store.url)

    async def burst() -> list[tuple[str, AcceptResult | BaseException, bool]]:
        return await asyncio.gather(*(one(i) for i in range(24)))

    try:
        results = asyncio.run(burst())
    finally:
        committer.close()
    for fp, res, seen in results:
        if fp == "fp7":
            assert isinstance(res, StoreUnavailableError) and not seen
        else:
            assert res == AcceptResult(accepted=1, duplicates=0, opened=1) and seen, fp
    assert committer.requests == 24 and 1 <= committer.groups <= 24
    assert stored(store.url) == {f"fp{i}" for i in range(24) if i != 7}


def test_only_redeliveries_of_what_was_committed_before_the_group_are_answered_before_its_commit(
    store: StateStore,
) -> None:
    commit_group(store, [batch(incoming("old"))])
    settled: list[tuple[int, AcceptResult]] = []
    out = commit_group(
        store,
        [
            batch(incoming("new")),  # 0: writes
            batch(incoming("old")),  # 1: a redelivery of a committed alert: settled early
            batch(incoming("new")),  # 2: a duplicate, but of batch 0's uncommitted write: waits
            batch(incoming("old"), incoming("other")),  # 3: writes "other"
        ],
        lambda i, r: settled.append((i, r)),
    )
    assert settled == [(1, AcceptResult(accepted=0, duplicates=1, opened=0))]
    assert out[1] == settled[0][1]
    assert [o.accepted for o in out if isinstance(o, AcceptResult)] == [1, 0, 0, 1]
    assert stored(store.url) == {"old", "new", "other"}
