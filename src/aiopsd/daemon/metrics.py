"""Self-metrics and exported anomaly scores, on a registry owned by one daemon (no globals)."""

from __future__ import annotations

import logging
import math
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from aiopsd.engine.history import engine_state
from aiopsd.models import FindingKind, RunStatus, series_key

if TYPE_CHECKING:
    from aiopsd.engine.rules import Rule
    from aiopsd.store import StateStore

logger = logging.getLogger(__name__)
_BAND_FIELDS = ("anomaly_score", "yhat", "yhat_lower", "yhat_upper")


_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def exposition_labels(watch: str, labels: dict[str, str]) -> dict[str, str]:
    """A series' labels as valid exposition labels, ``aiopsd_watch`` first.

    ``__name__`` (a watch on a plain selector) becomes ``aiopsd_metric``; other ``__``-prefixed
    names (reserved by Prometheus), invalid names and labels named ``aiopsd_watch`` or
    ``aiopsd_metric`` are dropped: one such label would make Prometheus reject the whole scrape.
    """
    out = {"aiopsd_watch": watch}
    for name, value in labels.items():
        if name == "__name__":
            out["aiopsd_metric"] = value
        elif _LABEL_NAME.match(name) and not name.startswith("__") and name not in _OWN_LABELS:
            out[name] = value
    return out


_OWN_LABELS = frozenset({"aiopsd_watch", "aiopsd_metric"})


class ScoreExport(Collector):
    """Latest score and band per watched series, with the series' own labels (for Grafana/alerts).

    Exposed as ``aiopsd_anomaly_score``, ``aiopsd_anomaly_yhat``, ``aiopsd_anomaly_yhat_lower``,
    ``aiopsd_anomaly_yhat_upper`` with label ``aiopsd_watch`` plus the series labels (see
    :func:`exposition_labels`). A series' gauges are dropped once the watch stops seeing it.
    """

    # Scored points kept per series for ``verify: {check: {score_below: ...}}`` (the verifier reads them).
    POINTS = 256

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, ...]] = {}
        self._points: dict[str, deque[tuple[float, float]]] = {}

    def record_point(self, series: str, t: float, score: float) -> None:
        """One scored point of a series (``series_key``): what score_below verification counts."""
        with self._lock:
            self._points.setdefault(series, deque(maxlen=self.POINTS)).append((t, score))

    def points(self, series: str, after: float) -> list[tuple[float, float]] | None:
        """The series' scored points newer than ``after``; None when the series is not scored (gone)."""
        with self._lock:
            kept = self._points.get(series)
            return None if kept is None else [p for p in kept if p[0] > after]

    @staticmethod
    def _key(watch: str, labels: dict[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
        return watch, tuple(sorted(exposition_labels(watch, labels).items()))

    def set(self, watch: str, labels: dict[str, str], values: tuple[float, float, float, float]) -> None:
        key = self._key(watch, labels)
        with self._lock:
            self._latest[key] = values

    def drop(self, watch: str, labels: dict[str, str]) -> None:
        """Forget one series' gauges (it vanished)."""
        key = self._key(watch, labels)
        with self._lock:
            self._latest.pop(key, None)
            self._points.pop(series_key(watch, labels), None)

    def forget(self, watch: str) -> None:
        with self._lock:
            for key in [k for k in self._latest if k[0] == watch]:
                del self._latest[key]
            for name in [k for k in self._points if k.startswith(f"{watch}{{")]:
                del self._points[name]

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            items = list(self._latest.items())
        docs = {
            "anomaly_score": "Latest anomaly score per watched series (>= 1 is anomalous)",
            "yhat": "Expected value of the series",
            "yhat_lower": "Lower bound of the expected band",
            "yhat_upper": "Upper bound of the expected band",
        }
        for i, field in enumerate(_BAND_FIELDS):
            name = "aiopsd_anomaly_score" if field == "anomaly_score" else f"aiopsd_anomaly_{field}"
            metric = Metric(name, docs[field], "gauge")
            for (_watch, labels), values in items:
                if not math.isnan(values[i]):
                    metric.add_sample(name, dict(labels), values[i])
            yield metric


_PERFORMANCE_DOCS = {
    "estimate": "Latest estimated performance of a model (CBPE/DLE) on a window without labels",
    "realised": "Realised performance of the latest window of labelled rows",
    "estimation_error": "Estimate minus realised performance, on the same labelled rows",
}


class PerformanceExport(Collector):
    """Estimated and realised model performance (``aiopsd_performance_estimate``, ``..._realised``,
    ``..._estimation_error``, labels ``model`` and ``metric``); :meth:`latest` feeds the status page."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[tuple[str, str], dict[str, float]] = {}

    def set(self, model: str, metric: str, values: dict[str, float]) -> None:
        """Update some of ``estimate``, ``realised``, ``estimation_error`` (non-finite values are skipped)."""
        with self._lock:
            row = self._latest.setdefault((model, metric), {})
            row.update({k: v for k, v in values.items() if k in _PERFORMANCE_DOCS and math.isfinite(v)})

    def forget(self, model: str) -> None:
        with self._lock:
            for key in [k for k in self._latest if k[0] == model]:
                del self._latest[key]

    def latest(self) -> dict[tuple[str, str], dict[str, float]]:
        with self._lock:
            return {k: dict(v) for k, v in self._latest.items()}

    def collect(self) -> Iterable[Metric]:
        items = self.latest()
        for field, doc in _PERFORMANCE_DOCS.items():
            name = f"aiopsd_performance_{field}"
            metric = Metric(name, doc, "gauge")
            for (model, which), values in sorted(items.items()):
                if field in values:
                    metric.add_sample(name, {"model": model, "metric": which}, values[field])
            yield metric


class StoreStateExport(Collector):
    """What the state store says now, read at scrape time: findings firing, runs waiting, open circuits.

    These are facts of the shared store (every replica reports the same), unlike the
    counters above, which count what this process did.
    """

    def __init__(self, store: StateStore, rules: Callable[[], Sequence[Rule]]) -> None:
        self.store = store
        self.rules = rules

    def collect(self) -> Iterable[Metric]:
        up = Metric("aiopsd_store_up", "1 when the state store answered the last scrape", "gauge")
        firing = Metric("aiopsd_findings_firing", "Findings firing now, by kind", "gauge")
        runs = Metric("aiopsd_action_runs_open", "Action runs not finished yet, by status", "gauge")
        circuit = Metric("aiopsd_rule_circuit_open", "1 while a rule's circuit breaker is open", "gauge")
        try:
            by_kind = self.store.firing_by_kind()
            by_status = self.store.counts()["runs"]
            ruleset = list(self.rules())
            state = engine_state(self.store, ruleset, datetime.now(UTC), sources_down={})
        except Exception as exc:  # a scrape must answer even when the store does not
            logger.warning("store metrics unavailable: %s", exc)
            up.add_sample("aiopsd_store_up", {}, 0)
            yield up
            return
        up.add_sample("aiopsd_store_up", {}, 1)
        for kind in FindingKind:
            firing.add_sample("aiopsd_findings_firing", {"kind": str(kind)}, by_kind.get(str(kind), 0))
        for status in (RunStatus.PENDING, RunStatus.AWAITING_APPROVAL, RunStatus.RUNNING):
            runs.add_sample("aiopsd_action_runs_open", {"status": str(status)}, by_status.get(str(status), 0))
        for rule in ruleset:
            circuit.add_sample(
                "aiopsd_rule_circuit_open", {"rule": rule.name}, 1 if rule.name in state.open_circuits else 0
            )
        yield from (up, firing, runs, circuit)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.alerts = Counter(
            "aiopsd_alerts_received", "Alerts received on the webhook, by result", ["result"], registry=r
        )
        self.webhook_requests = Counter(
            "aiopsd_webhook_requests", "Webhook requests by HTTP status", ["code"], registry=r
        )
        self.findings = Counter("aiopsd_findings", "Findings opened, by kind", ["kind"], registry=r)
        self.decisions = Counter(
            "aiopsd_decisions", "Engine decisions, by outcome and reason code", ["outcome", "code"], registry=r
        )
        self.runs = Counter(
            "aiopsd_action_runs", "Finished action runs, by kind and status", ["kind", "status"], registry=r
        )
        self.run_duration = Histogram(
            "aiopsd_action_duration_seconds",
            "Action run duration",
            ["kind"],
            registry=r,
            buckets=(1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
        )
        self.outcomes = Counter(
            "aiopsd_remediation_outcomes",
            "Verified outcomes of succeeded remediations (verify:), by rule and outcome",
            ["rule", "outcome"],
            registry=r,
        )
        self.runs_active = Gauge("aiopsd_action_runs_active", "Action runs executing now", registry=r)
        self.result_store_errors = Counter(
            "aiopsd_action_result_store_errors",
            "Failed attempts to store a finished action's result (retried until stored)",
            registry=r,
        )
        self.results_unstored = Gauge(
            "aiopsd_action_results_unstored",
            "Finished actions whose result is not stored yet (their run still shows running)",
            registry=r,
        )
        self.results_rejected = Counter(
            "aiopsd_action_results_rejected",
            "Results not recorded because the run was no longer running as this replica's",
            registry=r,
        )
        self.source_up = Gauge("aiopsd_source_up", "1 when the source answered its last poll", ["source"], registry=r)
        self.poll_lag = Gauge(
            "aiopsd_source_poll_lag_seconds",
            "Age of the newest point the last poll judged, when its findings were stored",
            ["source"],
            registry=r,
        )
        self.poll_duration = Histogram(
            "aiopsd_source_poll_duration_seconds", "Whole source poll: read, detect, store", ["source"], registry=r
        )
        self.scheduler_lag = Gauge(
            "aiopsd_scheduler_lag_seconds", "How late the last scheduled job started", ["job"], registry=r
        )
        self.scheduler_misfires = Counter("aiopsd_scheduler_misfires", "Scheduled runs missed", ["job"], registry=r)
        self.scheduler_skipped = Counter(
            "aiopsd_scheduler_skipped",
            "Scheduled runs skipped because the job's previous run was still running (an overloaded poll)",
            ["job"],
            registry=r,
        )
        self.last_tick = Gauge(
            "aiopsd_scheduler_last_tick_timestamp_seconds", "When the dispatch loop last completed", registry=r
        )
        self.store_latency = Histogram(
            "aiopsd_store_operation_seconds",
            "State store operation latency",
            ["op"],
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
        )
        self.bad_rows = Counter(
            "aiopsd_prediction_log_bad_rows", "Prediction log rows skipped as invalid", ["model"], registry=r
        )
        self.rules_loaded = Gauge("aiopsd_rules_loaded", "Rules in the running set", registry=r)
        self.config_reload = Counter("aiopsd_config_reloads", "Config reloads by result", ["result"], registry=r)
        self.config_valid = Gauge(
            "aiopsd_config_last_reload_ok", "1 when the last config/rules reload succeeded", registry=r
        )
        self.config_valid.set(1)
        self.leader = Gauge("aiopsd_leader", "1 while this replica holds the leader lease", registry=r)
        self.shards_held = Gauge(
            "aiopsd_shards_held", "Shards this replica scores (sharding.enabled on PostgreSQL)", registry=r
        )
        self.shard_members = Gauge(
            "aiopsd_shard_members", "Live replicas sharing the shards, as this replica last saw them", registry=r
        )
        self.restart_needed = Gauge(
            "aiopsd_config_restart_needed", "1 when a reloaded setting only takes effect after a restart", registry=r
        )
        self.watch_series = Gauge(
            "aiopsd_watch_series", "Series a watch tracks now (at most max_series)", ["watch"], registry=r
        )
        self.series_refused = Gauge(
            "aiopsd_watch_series_refused",
            "Series the last poll returned beyond the watch's max_series (not scored)",
            ["watch"],
            registry=r,
        )
        self.remote_write_queue = Gauge(
            "aiopsd_remote_write_queue_points", "Scored points waiting to be remote-written", registry=r
        )
        self.remote_write_lag = Gauge(
            "aiopsd_remote_write_lag_seconds", "Age of the oldest scored point not remote-written yet", registry=r
        )
        self.remote_write_samples = Counter(
            "aiopsd_remote_write_samples",
            "Score samples remote-written (sent), refused by the receiver (rejected) or dropped from a full queue",
            ["result"],
            registry=r,
        )
        self.remote_write_failures = Counter(
            "aiopsd_remote_write_failures", "Remote-write requests that failed and are retried", registry=r
        )
        for result in ("sent", "rejected", "dropped"):
            self.remote_write_samples.labels(result)
        self.scores = ScoreExport()
        r.register(self.scores)
        self.performance = PerformanceExport()
        r.register(self.performance)
        for result in ("accepted", "duplicate", "rejected"):
            self.alerts.labels(result)
        for kind in FindingKind:
            self.findings.labels(str(kind))
        self._store_export: StoreStateExport | None = None

    def attach_store(self, store: StateStore, rules: Callable[[], Sequence[Rule]]) -> None:
        """Time every store transaction and export the store's current state (once per registry)."""
        latency = self.store_latency

        def observe(op: str, seconds: float) -> None:
            latency.labels(op).observe(seconds)

        store.observe = observe
        if self._store_export is None:
            self._store_export = StoreStateExport(store, rules)
            self.registry.register(self._store_export)
