"""Scores pushed to Prometheus' remote-write receiver: own queue, own thread, retries with backoff.

Watches with ``export: {scores: remote_write}`` hand every scored point of a committed
poll to :meth:`RemoteWriter.push` (which only appends to a queue: the poll never waits
on the network). One thread sends them in requests of ``batch`` time series,
protobuf + snappy (remote write 1.0), as ``aiopsd_anomaly_score``, ``aiopsd_anomaly_yhat``,
``aiopsd_anomaly_yhat_lower`` and ``aiopsd_anomaly_yhat_upper`` with the labels of
:func:`~aiopsd.daemon.metrics.exposition_labels` (``aiopsd_watch`` plus the series' own).

* a request failing with no connection, 5xx or 429 is retried, backing off exponentially
  from 0.5 s up to ``max_backoff``; the points stay queued meanwhile;
* a request refused with another 4xx (out-of-order or invalid samples) is dropped and
  counted: sending it again cannot succeed;
* beyond ``max_queue`` points the oldest are dropped and counted (a long outage must not
  grow the daemon without bound).

Its state is on ``/metrics``: ``aiopsd_remote_write_queue_points``,
``aiopsd_remote_write_lag_seconds`` (age of the oldest point still queued, 0 when empty),
``aiopsd_remote_write_samples_total{result=sent|rejected|dropped}`` and
``aiopsd_remote_write_failures_total`` (requests that failed and will be retried).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

import cramjam
import httpx

from aiopsd.config.sources import RemoteWriteConfig
from aiopsd.daemon.metrics import exposition_labels
from aiopsd.daemon.remote_proto import around_name, encode_request, name_label

if TYPE_CHECKING:
    from aiopsd.daemon.metrics import Metrics
    from aiopsd.sources.base import ScorePoint

logger = logging.getLogger(__name__)

_NAMES = ("aiopsd_anomaly_score", "aiopsd_anomaly_yhat", "aiopsd_anomaly_yhat_lower", "aiopsd_anomaly_yhat_upper")
_NAME_LABELS = tuple(name_label(n) for n in _NAMES)
_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": "aiopsd",
}

_Queued = tuple[str, str, dict[str, str], float, tuple[float, float, float, float]]


class RemoteWriter:
    """A bounded queue of scored points and the thread that writes them (started by the first push)."""

    def __init__(self, config: RemoteWriteConfig, url: str, metrics: Metrics) -> None:
        self.config = config
        self.url = url
        self.metrics = metrics
        self._queue: deque[_Queued] = deque()
        self._labels: dict[tuple[str, str], tuple[bytes, bytes]] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._http = httpx.Client(timeout=config.timeout, transport=httpx.HTTPTransport(retries=0))
        self.backoff = 0.0
        metrics.remote_write_queue.set_function(lambda: len(self._queue))
        metrics.remote_write_lag.set_function(self._lag)

    def _lag(self) -> float:
        with self._cond:
            oldest = self._queue[0][3] if self._queue else None
        return 0.0 if oldest is None else max(0.0, time.time() - oldest)

    def push(self, watch: str, points: Sequence[ScorePoint]) -> None:
        """Queue points ``(series key, labels, timestamp, (score, yhat, lower, upper))``; never blocks."""
        if not points:
            return
        with self._cond:
            self._queue.extend((watch, key, labels, t, values) for key, labels, t, values in points)
            over = len(self._queue) - self.config.max_queue
            for _ in range(max(0, over)):
                self._queue.popleft()
            self._cond.notify()
        if over > 0:
            self.metrics.remote_write_samples.labels("dropped").inc(over)
            logger.warning("remote write: queue full, dropped the %d oldest points", over)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="remote-write", daemon=True)
            self._thread.start()

    def forget(self, watch: str, key: str) -> None:
        """A series is gone: drop its cached labels (its queued points are still sent)."""
        self._labels.pop((watch, key), None)

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is queued for up to ``timeout`` seconds, then stop the thread."""
        deadline = time.monotonic() + timeout
        while self._queue and time.monotonic() < deadline and self._thread is not None and self.backoff == 0:
            self._stop.wait(0.05)
        self._stop.set()
        with self._cond:
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        self._http.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                while not self._queue and not self._stop.is_set():
                    self._cond.wait(1.0)
            if self._stop.is_set():
                return
            try:
                sent = self.send_once()
            except Exception:  # the writer must outlive one bad batch
                logger.exception("remote write: batch dropped")
                sent = True
            if not sent and self._stop.wait(self.backoff):
                return

    def _take(self) -> list[_Queued]:
        per = max(1, self.config.batch // len(_NAMES))
        with self._cond:
            return [self._queue.popleft() for _ in range(min(per, len(self._queue)))]

    def _encode(self, batch: Sequence[_Queued]) -> tuple[bytes, int]:
        rows: list[tuple[bytes, float, int]] = []
        unwritable = 0
        for watch, key, labels, t, values in batch:
            parts = self._labels.get((watch, key))
            if parts is None:
                try:
                    parts = around_name(exposition_labels(watch, labels))
                except ValueError:  # a label value protobuf cannot write (a lone surrogate): this series only
                    unwritable += 1
                    continue
                self._labels[(watch, key)] = parts
            before, after = parts
            ms = round(t * 1000)
            for name, value in zip(_NAME_LABELS, values, strict=True):
                if not math.isnan(value):
                    rows.append((before + name + after, value, ms))
        if unwritable:
            self.metrics.remote_write_samples.labels("rejected").inc(unwritable)
            logger.warning("remote write: %d points with labels that cannot be encoded were dropped", unwritable)
        return bytes(cramjam.snappy.compress_raw(encode_request(rows))), len(rows)

    def send_once(self) -> bool:
        """Send one batch; False when it must be retried (the points are back at the queue's head)."""
        batch = self._take()
        if not batch:
            return True
        body, samples = self._encode(batch)
        m = self.metrics
        try:
            resp = self._http.post(self.url, content=body, headers=_HEADERS)
            code = resp.status_code
        except httpx.HTTPError as exc:
            code, reason = 0, exc.__class__.__name__
        else:
            reason = resp.text[:200]
        if 200 <= code < 300:
            self.backoff = 0.0
            m.remote_write_samples.labels("sent").inc(samples)
            return True
        if 400 <= code < 500 and code != 429:
            self.backoff = 0.0
            m.remote_write_samples.labels("rejected").inc(samples)
            logger.warning("remote write to %s refused %d samples (HTTP %d): %s", self.url, samples, code, reason)
            return True
        with self._cond:
            self._queue.extendleft(reversed(batch))
        m.remote_write_failures.inc()
        self.backoff = min(self.config.max_backoff, max(0.5, 2 * self.backoff))
        logger.warning(
            "remote write to %s failed (%s); retrying in %.1fs",
            self.url,
            f"HTTP {code}" if code else reason,
            self.backoff,
        )
        return False
