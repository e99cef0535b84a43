"""What a running daemon holds: settings, the rule set, the store, metrics, and its flags."""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass, field

from aiopsd.config import Settings
from aiopsd.daemon.metrics import Metrics
from aiopsd.engine.rules import Rule
from aiopsd.store import StateStore


@dataclass
class Runtime:
    settings: Settings
    rules: list[Rule]
    store: StateStore
    metrics: Metrics
    started_at: float = field(default_factory=time.time)
    replica: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    # Set when SIGTERM arrives: the webhook answers 503 so Alertmanager retries elsewhere/later.
    draining: threading.Event = field(default_factory=threading.Event)
    ready: threading.Event = field(default_factory=threading.Event)
    last_reload_error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.metrics.attach_store(self.store, lambda: list(self.rules_by_name().values()))

    def rules_by_name(self) -> dict[str, Rule]:
        with self.lock:
            return {r.name: r for r in self.rules}

    def set_rules(self, rules: list[Rule]) -> None:
        with self.lock:
            self.rules = list(rules)
        self.metrics.rules_loaded.set(len(rules))
