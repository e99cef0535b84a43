"""Group commit for the webhook: one writer thread commits many requests' alerts per transaction.

Each request is answered only after the transaction holding its alerts has
committed (2xx = durable), or with the store's error (503) if it did not. Under
load, requests that arrive while a commit is in progress are committed together
in the next one, so SQLite's one-fsync-per-commit and its single-writer lock are
paid once per group instead of once per request, and the group's lookups and
inserts are one set of statements (``store.alerts.accept_batches``). Measured with
``bench/webhook.py`` (see docs/operations.md). A request that is nothing but
redeliveries of alerts committed before its group is answered as soon as the group's
lookups show it (it writes nothing, and what it names is durable already), without
waiting for the group's fsync.

One request cannot fail the others of its group: when a group's transaction fails
for a reason other than the store being unreachable (a row the database refuses, a
bug hit by one payload), each request of the group is retried in a transaction of
its own, so only the one that fails again gets the 503. When the store itself is
down (``OperationalError``: locked past the busy timeout, disk full, connection
lost) every request of the group gets the 503 at once, without N more attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import InterfaceError, OperationalError

from aiopsd.errors import StoreUnavailableError
from aiopsd.store import AcceptResult, StateStore
from aiopsd.store.state import AlertBatch

logger = logging.getLogger(__name__)

MAX_GROUP_ALERTS = 5000


@dataclass
class _Job:
    batch: AlertBatch
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[AcceptResult]


class GroupCommitter:
    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.groups = 0
        self.requests = 0
        self.early = 0  # requests answered before their group's commit (redeliveries only)

    def _ensure_started(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="webhook-commit", daemon=True)
                self._thread.start()

    async def submit(self, batch: AlertBatch) -> AcceptResult:
        """Wait until ``batch`` is committed; raises StoreUnavailableError if it was not."""
        self._ensure_started()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AcceptResult] = loop.create_future()
        self._queue.put(_Job(batch, loop, future))
        return await future

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs, alerts = [job], len(job.batch.alerts)
            while alerts < MAX_GROUP_ALERTS:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                jobs.append(nxt)
                alerts += len(nxt.batch.alerts)
            self._commit(jobs)

    def _commit(self, jobs: list[_Job]) -> None:
        def settled(i: int, result: AcceptResult) -> None:
            # Redeliveries of what was committed before: answered before this group's commit.
            self.early += 1
            answer: list[tuple[_Job, AcceptResult | BaseException]] = [(jobs[i], result)]
            with contextlib.suppress(RuntimeError):
                jobs[i].loop.call_soon_threadsafe(_answer, answer)

        outcomes = commit_group(self.store, [j.batch for j in jobs], settled)
        self.groups += 1
        self.requests += len(jobs)
        # One wake-up per event loop for the whole group, not one per request.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, AcceptResult | BaseException]]] = defaultdict(list)
        for j, outcome in zip(jobs, outcomes, strict=True):
            by_loop[j.loop].append((j, outcome))
        for loop, answers in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody is waiting any more
                loop.call_soon_threadsafe(_answer, answers)


def commit_group(
    store: StateStore,
    batches: list[AlertBatch],
    on_settled: Callable[[int, AcceptResult], None] | None = None,
) -> list[AcceptResult | BaseException]:
    """Commit ``batches`` in one transaction; on a failure that is not the store being down, each alone.

    Returns, per batch, its result or the StoreUnavailableError its request is answered with.
    ``on_settled`` is told early about batches that were redeliveries of committed alerts only
    (``store.alerts.accept_batches``); their result stands whatever happens to the group.
    """
    try:
        return list(store.accept_alert_batches(batches, on_settled))
    except Exception as exc:
        err = _unavailable(exc)
        if len(batches) == 1 or _store_down(exc):
            return [err] * len(batches)
        logger.warning("group commit of %d requests failed (%s); committing each on its own", len(batches), err)
    out: list[AcceptResult | BaseException] = []
    for b in batches:
        try:
            out.append(store.accept_alert_batches([b])[0])
        except Exception as exc:
            out.append(_unavailable(exc))
    return out


def _unavailable(exc: Exception) -> StoreUnavailableError:
    if isinstance(exc, StoreUnavailableError):
        return exc
    # Never leave a request waiting: the sender gets a 503 and retries.
    logger.error("webhook commit failed", exc_info=exc)
    return StoreUnavailableError(f"state store write failed: {exc.__class__.__name__}: {exc}")


def _store_down(exc: Exception) -> bool:
    return isinstance(exc, StoreUnavailableError) and isinstance(exc.__cause__, (OperationalError, InterfaceError))


def _answer(answers: list[tuple[_Job, AcceptResult | BaseException]]) -> None:
    for j, outcome in answers:
        if j.future.done():
            continue
        if isinstance(outcome, BaseException):
            j.future.set_exception(outcome)
        else:
            j.future.set_result(outcome)
