"""Group commit for the webhook: one writer thread commits many requests' alerts per transaction.

Each request is answered only after the transaction holding its alerts has
committed (2xx = durable), or with the store's error (503) if it did not. Under
load, requests that arrive while a commit is in progress are committed together
in the next one, so SQLite's one-fsync-per-commit and its single-writer lock are
paid once per group instead of once per request. Measured with ``bench/webhook.py``
(see docs/safety.md).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass

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
        try:
            results = self.store.accept_alert_batches([j.batch for j in jobs])
        except StoreUnavailableError as exc:
            for j in jobs:
                j.loop.call_soon_threadsafe(_fail, j.future, exc)
            return
        except Exception as exc:  # never leave a request waiting: the sender gets a 503 and retries
            logger.exception("group commit failed")
            err = StoreUnavailableError(f"state store write failed: {exc.__class__.__name__}: {exc}")
            for j in jobs:
                j.loop.call_soon_threadsafe(_fail, j.future, err)
            return
        self.groups += 1
        self.requests += len(jobs)
        for j, r in zip(jobs, results, strict=True):
            j.loop.call_soon_threadsafe(_done, j.future, r)


def _done(future: asyncio.Future[AcceptResult], result: AcceptResult) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[AcceptResult], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
