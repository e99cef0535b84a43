"""Read Alertmanager's silences through its API v2, cached; Alertmanager unreachable is a health fact.

The cache answers from memory for ``ttl`` seconds. When a refresh fails the view is
marked down (with the reason) and keeps the silences last read, so a caller can tell
"no silence" from "could not ask" and decide never to act on the latter.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx

from aiopsd.engine.silences import Silence, parse_silences

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SilenceView:
    up: bool
    silences: tuple[Silence, ...]
    error: str = ""
    # Monotonic time of the last successful read (None: never read).
    read_at: float | None = None
    skipped: int = 0


class SilenceCache:
    def __init__(
        self, url: str, *, timeout: float = 5.0, ttl: float = 15.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._view = SilenceView(up=False, silences=(), error="not read yet")
        self._checked: float | None = None

    def view(self) -> SilenceView:
        """The cached view, refreshed when older than ``ttl`` (a failed read is retried after ``ttl`` too)."""
        with self._lock:
            now = self._clock()
            if self._checked is None or now - self._checked >= self.ttl:
                self._view = self._read(now)
                self._checked = now
            return self._view

    def refresh(self) -> SilenceView:
        with self._lock:
            self._checked = None
        return self.view()

    def active(self, now: datetime) -> tuple[Silence, ...]:
        return tuple(s for s in self.view().silences if s.active(now))

    def _read(self, now: float) -> SilenceView:
        last = self._view
        try:
            resp = httpx.get(f"{self.url}/api/v2/silences", timeout=self.timeout)
            resp.raise_for_status()
            items = resp.json()
            if not isinstance(items, list):
                raise ValueError("the answer is not a list of silences")
        except (httpx.HTTPError, ValueError) as exc:
            reason = f"Alertmanager silences unreadable: {exc}"
            if last.up:
                logger.warning("%s", reason)
            return SilenceView(up=False, silences=last.silences, error=reason, read_at=last.read_at)
        silences = parse_silences(items)
        if len(silences) < len(items):
            logger.warning("skipped %d malformed silences from Alertmanager", len(items) - len(silences))
        return SilenceView(up=True, silences=tuple(silences), read_at=now, skipped=len(items) - len(silences))
