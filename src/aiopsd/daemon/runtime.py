"""What a running daemon holds: settings, the rule set, the store, metrics, and its flags."""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field

from aiopsd.config import Settings
from aiopsd.daemon.metrics import Metrics
from aiopsd.engine.rules import Rule
from aiopsd.store import StateStore


def process_slot() -> str:
    """``hostname:pid``: what a restarted container keeps (same hostname, PID 1 again)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def replica_identity() -> str:
    """``hostname:pid:nonce``, new at every process start even when hostname and PID repeat.

    The random part tells a restarted container from its previous life, whose runs are
    then orphans (interrupted), not its own live work.
    """
    return f"{process_slot()}:{secrets.token_hex(4)}"


@dataclass
class Runtime:
    settings: Settings
    rules: list[Rule]
    store: StateStore
    metrics: Metrics
    started_at: float = field(default_factory=time.time)
    # Unique per process start (see replica_identity); owner of the runs this process claims.
    replica: str = field(default_factory=replica_identity)
    # Set when SIGTERM arrives: the webhook answers 503 so Alertmanager retries elsewhere/later.
    draining: threading.Event = field(default_factory=threading.Event)
    ready: threading.Event = field(default_factory=threading.Event)
    last_reload_error: str = ""
    # Changed settings that only take effect after a restart (listen, state_url, ...).
    restart_needed: list[str] = field(default_factory=list)
    # Monotonic time until which this replica holds the leader lease (inf: no HA, always leader).
    leader_until: float = float("inf")
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.metrics.attach_store(self.store, lambda: list(self.rules_by_name().values()))

    def rules_by_name(self) -> dict[str, Rule]:
        with self.lock:
            return {r.name: r for r in self.rules}

    def is_leader(self) -> bool:
        """Only the leader polls, detects and decides; every replica executes claimed runs."""
        return time.monotonic() < self.leader_until

    def set_rules(self, rules: list[Rule]) -> None:
        with self.lock:
            self.rules = list(rules)
        self.metrics.rules_loaded.set(len(rules))
