"""A small demo service that exports metrics with injected incidents, and can be "restarted".

- ``demo_api_latency_seconds``: a smooth daily-like curve with noise; during a latency
  incident it jumps to ~0.6 s until the service is restarted (``POST /restart``).
- ``demo_api_errors_total``: a counter whose rate jumps during an error burst, which a
  Prometheus alerting rule turns into an Alertmanager alert.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

BASE_LATENCY = 0.120
INCIDENT_LATENCY = 0.600
BASE_ERROR_RATE = 0.2
BURST_ERROR_RATE = 6.0
LABELS = {"service": "checkout", "host": "localhost"}


def latency_at(t: float, rng: random.Random) -> float:
    return BASE_LATENCY + 0.01 * math.sin(2 * math.pi * t / 900.0) + rng.gauss(0.0, 0.003)


@dataclass
class Workload:
    """Metric values as a function of time, plus the incident schedule (epoch seconds)."""

    seed: int = 7
    latency_incident_at: float | None = None
    latency_incident_max: float = 120.0
    error_burst_at: float | None = None
    error_burst_len: float = 30.0
    restarted_at: float | None = None
    restarts: int = 0
    _rng: random.Random = field(default_factory=random.Random)
    _errors: float = 0.0
    _errors_t: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)

    def latency_incident_active(self, now: float) -> bool:
        start = self.latency_incident_at
        if start is None or now < start or now > start + self.latency_incident_max:
            return False
        return self.restarted_at is None or self.restarted_at < start

    def error_rate(self, now: float) -> float:
        b = self.error_burst_at
        return BURST_ERROR_RATE if b is not None and b <= now < b + self.error_burst_len else BASE_ERROR_RATE

    def latency(self, now: float) -> float:
        if self.latency_incident_active(now):
            return INCIDENT_LATENCY + self._rng.gauss(0.0, 0.02)
        return latency_at(now, self._rng)

    def errors_total(self, now: float) -> float:
        with self._lock:
            if self._errors_t is None:
                self._errors_t = now
            if now > self._errors_t:
                self._errors += self.error_rate(now) * (now - self._errors_t)
                self._errors_t = now
            return math.floor(self._errors)

    def restart(self, now: float) -> None:
        self.restarted_at = now
        self.restarts += 1

    def history(
        self, start: float, end: float, step: float, extra_labels: dict[str, str]
    ) -> Iterator[tuple[str, dict[str, str], float, float]]:
        """Normal behaviour between start and end, for promtool backfill."""
        rng = random.Random(self.seed + 1)
        labels = {**LABELS, **extra_labels}
        errors = 0.0
        t = start
        while t < end:
            yield "demo_api_latency_seconds", labels, round(latency_at(t, rng), 6), t
            errors += BASE_ERROR_RATE * step
            yield "demo_api_errors_total", labels, float(math.floor(errors)), t
            t += step
        with self._lock:
            self._errors = errors
            self._errors_t = end


class _Collector(Collector):
    def __init__(self, workload: Workload) -> None:
        self.w = workload

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        g = GaugeMetricFamily("demo_api_latency_seconds", "p99 latency of the demo API", labels=list(LABELS))
        g.add_metric(list(LABELS.values()), self.w.latency(now))
        yield g
        c = CounterMetricFamily("demo_api_errors", "Errors answered by the demo API", labels=list(LABELS))
        c.add_metric(list(LABELS.values()), self.w.errors_total(now))
        yield c


def serve(workload: Workload, port: int) -> ThreadingHTTPServer:
    """Serve /metrics and POST /restart on 127.0.0.1:port in a background thread."""
    registry = CollectorRegistry()
    registry.register(_Collector(workload))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                body = generate_latest(registry)
                self._send(200, body, "text/plain; version=0.0.4")
            elif self.path.startswith("/healthz"):
                self._send(200, b"ok\n", "text/plain")
            else:
                self._send(404, b"not found\n", "text/plain")

        def do_POST(self) -> None:
            if self.path.startswith("/restart"):
                workload.restart(time.time())
                self._send(200, b'{"restarted": true}\n', "application/json")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, name="demo-workload", daemon=True).start()
    return server
