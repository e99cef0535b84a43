"""The HTTP server process part: uvicorn, with aiopsd's drain on SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

import uvicorn


class DrainingServer(uvicorn.Server):
    """uvicorn, except that SIGTERM/SIGINT start aiopsd's drain instead of closing the socket.

    The webhook keeps answering (503) while running actions finish, so Alertmanager
    retries elsewhere instead of seeing refused connections; the drain sets
    ``should_exit`` when it is done. The signal is not re-raised afterwards (uvicorn
    would), so a clean drain exits 0.
    """

    on_exit: Callable[[], None] = staticmethod(lambda: None)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit or getattr(self, "_draining", False):
            if sig == signal.SIGINT:
                self.force_exit = True
            return
        self._draining = True
        threading.Thread(target=self.on_exit, name="drain", daemon=True).start()
