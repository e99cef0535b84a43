"""The verifier: after a run of a rule with ``verify:`` succeeded, did the problem go away?

Only the leader runs it, on the dispatch tick. Each pending verification (store/verifications.py)
is checked from ``after`` until ``within`` (both from the run's end), at most every few seconds:

- a check that **holds** decides ``verified`` at once;
- a check that **fails** (the data is there and says "not fixed") is remembered;
- a check with **missing** data (Prometheus unreachable, query rejected, source down, stale
  data, series gone) is remembered too, and is never a verdict.

Once ``within`` has passed, the latest check decides: ``not_verified`` if it failed,
``unknown`` if its data was missing (or no check ran: the daemon was down all along).
The outcome is audited, counted in ``aiopsd_remediation_outcomes_total`` and, when it
makes the rule fall below ``min_success``, audited as the rule's demotion too.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from aiopsd.config import PrometheusConfig
from aiopsd.daemon.runtime import Runtime
from aiopsd.durations import format_duration
from aiopsd.engine.history import history_query
from aiopsd.engine.rules import Rule
from aiopsd.engine.verify import demotions
from aiopsd.errors import SourceError, StoreUnavailableError
from aiopsd.models import POLLED_FINDING_KINDS, FindingStatus, OutcomeRecord, VerifyOutcome
from aiopsd.sources.prometheus.client import PrometheusClient
from aiopsd.store.verifications import PendingVerification

logger = logging.getLogger(__name__)

State = Literal["holds", "fails", "missing"]
# How often one verification is checked at most (seconds; shorter for short windows).
CHECK_EVERY = 10.0
# The staleness limit of a finding whose rule is gone (the default guards.stale_after).
DEFAULT_STALE = 900.0


@dataclass(frozen=True)
class CheckResult:
    state: State
    reason: str
    progress: Mapping[str, Any] | None = None


Query = Callable[[str], list[tuple[dict[str, str], float]]]


@dataclass
class Verifier:
    runtime: Runtime
    # An instant query against Prometheus (built from the settings; tests may pass their own).
    query: Query | None = None
    _client: tuple[PrometheusConfig, PrometheusClient] | None = field(default=None, init=False)

    def _prometheus(self, expr: str) -> list[tuple[dict[str, str], float]]:
        if self.query is not None:
            return self.query(expr)
        config = self.runtime.settings.prometheus
        if self._client is None or self._client[0] != config:
            self._client = (config, PrometheusClient(config))
        return self._client[1].query(expr)

    # ------------------------------------------------------------------ tick
    def tick(self, now: datetime | None = None) -> int:
        """Check the due verifications; return how many were decided."""
        now = now or datetime.now(UTC)
        rules = self.runtime.rules_by_name()
        decided = 0
        for pending in self.runtime.store.due_verifications(now):
            try:
                decided += self._one(pending, rules.get(pending.rule), now)
            except StoreUnavailableError:
                raise
            except Exception:  # one verification's bug must not stop the others (it stays pending)
                logger.exception("verification of run %d failed", pending.run_id)
        return decided

    def _one(self, p: PendingVerification, rule: Rule | None, now: datetime) -> bool:
        at = now.timestamp()
        if at >= p.deadline:
            return self._finish(p, rule, now)
        every = min(CHECK_EVERY, max(1.0, (p.deadline - p.due_at) / 10))
        if p.last_checked_at is not None and at - p.last_checked_at < every:
            return False
        result = self.check(p, rule, now)
        if result.state == "holds":
            return self._decide(p, rule, VerifyOutcome.VERIFIED, result.reason, now)
        self.runtime.store.record_check(p.run_id, result.state, result.reason, now, result.progress)
        return False

    def _finish(self, p: PendingVerification, rule: Rule | None, now: datetime) -> bool:
        window = format_duration(float(p.plan.get("within", p.deadline - p.due_at)))
        if p.last_check == "fails":
            outcome, reason = VerifyOutcome.NOT_VERIFIED, f"still failing {window} after the run: {p.reason}"
        elif p.last_check is None:
            outcome, reason = VerifyOutcome.UNKNOWN, "no check ran within the window (was the daemon down?)"
        else:
            outcome, reason = VerifyOutcome.UNKNOWN, f"no data to judge at the end of the window: {p.reason}"
        return self._decide(p, rule, outcome, reason, now)

    def _decide(
        self, p: PendingVerification, rule: Rule | None, outcome: VerifyOutcome, reason: str, now: datetime
    ) -> bool:
        store, m = self.runtime.store, self.runtime.metrics
        demoted = self._demotion(p, rule, outcome, now)
        if not store.decide_verification(p.run_id, outcome, reason, now, demoted=demoted):
            return False
        m.outcomes.labels(p.rule, str(outcome)).inc()
        log = logger.info if outcome == VerifyOutcome.VERIFIED else logger.warning
        log("run %d of rule %s on finding %s: %s: %s", p.run_id, p.rule, p.finding_id, outcome, reason)
        if demoted is not None:
            logger.warning("rule %s demoted to require_approval: %s", p.rule, demoted)
        return True

    def _demotion(self, p: PendingVerification, rule: Rule | None, outcome: VerifyOutcome, now: datetime) -> str | None:
        """Why this outcome demotes the rule (it was not demoted before), or None."""
        if rule is None or rule.min_success is None:
            return None
        history = self.runtime.store.history(history_query([rule], now))
        before = demotions([rule], history.outcomes, history.restores)
        new = OutcomeRecord(rule=rule.name, finding_id=p.finding_id, run_id=p.run_id, outcome=outcome, decided_at=now)
        after = demotions([rule], [*history.outcomes, new], history.restores)
        return after.get(rule.name) if rule.name not in before else None

    # ----------------------------------------------------------------- checks
    def check(self, p: PendingVerification, rule: Rule | None, now: datetime) -> CheckResult:
        check = p.plan.get("check")
        if isinstance(check, dict) and "promql" in check:
            return self._promql(str(check["promql"]))
        if isinstance(check, dict) and "score_below" in check:
            return self._score_below(p, int(check["score_below"]["points"]), rule, now)
        return self._resolved(p, rule, now)

    def _source_problem(self, p: PendingVerification, rule: Rule | None, now: datetime) -> str | None:
        """Why the finding's own data cannot be trusted now (source down, stale), or None."""
        finding = self.runtime.store.get_finding(p.finding_id)
        if finding is None:
            return "the finding is gone from the store"
        if finding.kind not in POLLED_FINDING_KINDS:
            return None
        down = {s["name"]: s["error"] or "not answering" for s in self.runtime.store.list_sources() if not s["up"]}
        if finding.source in down:
            return f"source down: {finding.source}: {down[finding.source]}"
        stale = rule.guards.stale_after if rule is not None else DEFAULT_STALE
        age = (now - finding.last_seen).total_seconds()
        if finding.status == FindingStatus.FIRING and age > stale:
            return f"stale data: last seen {format_duration(age)} ago"
        return None

    def _resolved(self, p: PendingVerification, rule: Rule | None, now: datetime) -> CheckResult:
        finding = self.runtime.store.get_finding(p.finding_id)
        if finding is None:
            return CheckResult("missing", "the finding is gone from the store")
        if finding.status == FindingStatus.RESOLVED:
            if finding.resolution in (None, "recovered"):
                return CheckResult("holds", "the finding resolved (recovered)")
            return CheckResult("missing", f"the finding resolved for lack of data ({finding.resolution})")
        problem = self._source_problem(p, rule, now)
        if problem is not None:
            return CheckResult("missing", problem)
        return CheckResult("fails", "the finding is still firing")

    def _promql(self, expr: str) -> CheckResult:
        try:
            samples = self._prometheus(expr)
        except SourceError as exc:
            return CheckResult("missing", str(exc))
        if not samples:
            return CheckResult("fails", f"{expr} returned no samples")
        bad = [(labels, v) for labels, v in samples if not (math.isfinite(v) and v > 0)]
        if bad:
            labels, v = bad[0]
            where = ",".join(f"{k}={val}" for k, val in sorted(labels.items())) or "scalar"
            return CheckResult("fails", f"{expr}: {len(bad)} of {len(samples)} samples not > 0 (e.g. {where}: {v:g})")
        return CheckResult("holds", f"{expr} holds ({len(samples)} samples > 0)")

    def _score_below(self, p: PendingVerification, points: int, rule: Rule | None, now: datetime) -> CheckResult:
        """Consecutive scored points of the finding's series since ``after``, counted across checks."""
        problem = self._source_problem(p, rule, now)
        if problem is not None:
            return CheckResult("missing", problem)
        finding = self.runtime.store.get_finding(p.finding_id)
        series = str((finding.details if finding else {}).get("series") or "")
        since = float(p.progress.get("last_t", p.due_at - 1e-3))
        seen = self.runtime.metrics.scores.points(series, since) if series else None
        if seen is None:
            return CheckResult("missing", f"no scores for the series {series or '(none)'}: it is not scored now")
        if not seen:
            state: State = "missing" if p.last_check is None else "fails" if p.last_check == "fails" else "missing"
            return CheckResult(state, p.reason or "no scored point since the run yet")
        below = int(p.progress.get("below", 0))
        for _, score in sorted(seen):
            below = below + 1 if score < 1.0 else 0
            if below >= points:
                return CheckResult("holds", f"anomaly score below 1 for {below} consecutive points")
        progress = {"last_t": max(t for t, _ in seen), "below": below}
        return CheckResult("fails", f"anomaly score below 1 for {below} of {points} consecutive points", progress)
