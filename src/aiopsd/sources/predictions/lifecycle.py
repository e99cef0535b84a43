"""A prediction log's model lifecycle: shadow a challenger beside the champion, promote or reject it on
a paired bound, and roll a promotion back when the new champion regresses.

The state lives with the versions in the model store (directory ``meta.json`` or MLflow version
tags, see :meth:`~aiopsd.model_store.base.ModelStore.mark`): a version in status ``shadow`` is the
challenger, and each version's ``lifecycle`` record says where it is:

``shadow`` -> ``promoting`` -> ``watching`` -> ``watched`` | ``rolling_back`` -> ``rolled_back``,
or ``shadow`` -> ``rejected``.

* **Shadow.** From the newest log time seen when aiopsd first sees the challenger (``since``), each
  labelled row the champion served (``version`` equal to the champion's number, or no version) is
  scored with the challenger too, in one ``predict`` per poll. The challenger is a pure function of
  the logged features, so scoring a row when its label is known (at once for inline labels) gives the
  same prediction as scoring it when it was logged, without keeping predictions whose label never
  comes. The per-row scores of both are kept under ``<state_dir>/lifecycle/<model>/`` (a restart
  continues). After ``shadow.rows`` compared rows, or once the log passes ``since + shadow.for``, the
  paired bootstrap bound (:mod:`aiopsd.detectors.drift.paired`) decides, once: promote if the lower
  bound of the challenger's advantage is >= ``min_improvement``, else reject.
* **Promotion** is three writes in this order: the record says ``promoting`` (with the comparison),
  the alias/pointer moves (the registry write), the audit entry; then the record says ``watching``.
  A crash between any two is finished on the next refresh (the pointer is the truth; promoting a
  version already served is not repeated), so there is always exactly one champion.
* **Regression watch.** For ``watch_after_promotion`` of log time after a promotion, the champion's
  realised per-row scores are compared with the previous version's metric on the shadow rows (or,
  after a promotion by hand, its last :data:`RECENT_ROWS` labelled rows). Once ``rollback_min_rows``
  rows are in, an upper bound below ``baseline - rollback_margin`` rolls back to the previous
  version: one decision, audited, reversible with ``aiopsd model promote``. With ``watch_on:
  estimated`` the log's CBPE/DLE estimate of each window stands for its rows instead of labels.

Registry errors (MLflow down) are logged and retried at the next poll; they never lose rows.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from aiopsd.config import PredictionLogConfig
from aiopsd.detectors.drift.paired import Array, compare, metric_value, regressed, row_scores
from aiopsd.model_store import ModelStore, ModelVersion, RegistryError
from aiopsd.sources.predictions.shadow_state import Paired, comparison_record, finite, record_of, stamp
from aiopsd.sources.predictions.windows import PredictionWindow

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 10.0  # the store is re-read at most this often (an MLflow round trip)
PROGRESS_SECONDS = 30.0  # a shadow's progress is written to its record at most this often
RECENT_ROWS = 5000  # the served version's latest scores: the baseline after a promotion by hand
_RESERVED = frozenset({"timestamp", "model", "version", "prediction", "label", "prediction_id"})


class Auditor(Protocol):
    def audit(self, kind: str, now: datetime, event: Mapping[str, Any]) -> None: ...


@dataclass
class _Shadow:
    version: int
    model: Any
    features: list[str] | None
    record: dict[str, Any]
    pairs: Paired
    written: float = -math.inf  # when progress was last written to the record (poll time)
    error: str | None = None  # the challenger could not score the logged rows: it is rejected


@dataclass
class _Watch:
    version: int
    record: dict[str, Any]
    scores: list[Array] = field(default_factory=list)
    pending: list[Array] = field(default_factory=list)
    saved: bool = True  # False: armed here (after a promotion by hand), record not yet written
    written: float = -math.inf  # when progress was last written to the record (poll time)

    @property
    def spec(self) -> dict[str, Any]:
        return dict(self.record["watch"])


class ModelLifecycle:
    """The shadow and regression watch of one prediction log's model (driven by its DriftWatch)."""

    def __init__(self, cfg: PredictionLogConfig, store: ModelStore, auditor: Auditor, state_dir: Path) -> None:
        assert cfg.lifecycle is not None
        self.cfg, self.life, self.store, self.auditor = cfg, cfg.lifecycle, store, auditor
        self.metric = self.life.metric_for(cfg.task)
        self.dir = state_dir / "lifecycle" / cfg.model
        self.champion: int | None = None
        self.shadow: _Shadow | None = None
        self.watch: _Watch | None = None
        self.log_time = -math.inf
        self.recent: deque[Array] = deque()
        self._recent_pending: list[Array] = []
        self._frames: list[pd.DataFrame] = []
        self._refreshed = -math.inf
        self._todo: list[ModelVersion] = []  # records cut off mid-switch, finished at commit

    # ---------------------------------------------------------------- reads
    def refresh(self, now: float) -> None:
        """Re-read versions, champion and records (at most every REFRESH_SECONDS); errors are logged."""
        if now - self._refreshed < REFRESH_SECONDS:
            return
        try:
            versions = self.store.list_versions()
            self._refreshed = now
            self._read(versions, now)
        except (RegistryError, OSError) as exc:
            logger.warning("%s: lifecycle cannot read %s: %s", self.cfg.model, self.store.label, exc)

    def _read(self, versions: list[ModelVersion], now: float) -> None:
        by_number = {v.number: v for v in versions}
        cur = next((v.number for v in versions if v.current), None)
        self._todo = [v for v in versions if record_of(v).get("state") in ("promoting", "rolling_back")]
        if cur != self.champion:
            previous, self.champion = self.champion, cur
            rec = record_of(by_number[cur]) if cur is not None else {}
            self.watch = _Watch(cur, rec) if cur is not None and rec.get("state") == "watching" else None
            if (
                self.watch is None
                and cur is not None
                and previous is not None
                and rec.get("state", "approved") == "approved"
            ):
                self._arm_after_manual_promotion(cur, previous, rec)
            self.recent.clear()
        shadows = [v for v in versions if v.status == "shadow"]
        newest = shadows[-1] if shadows else None
        if newest is None:
            self.shadow = None
        elif self.shadow is None or self.shadow.version != newest.number:
            self.shadow = self._open_shadow(newest, now)

    def _open_shadow(self, v: ModelVersion, now: float) -> _Shadow:
        _, model = self.store.load(v.number)
        rec = dict(record_of(v))
        if "since" not in rec:  # first sight: the rows logged from now on are the shadow's
            span = self.life.shadow
            rec.update(
                state="shadow",
                champion=self.champion,
                since=self.log_time if math.isfinite(self.log_time) else now,
                span={"rows": span.rows} if span is not None and span.rows else {"for": span.for_ if span else None},
            )
        names = getattr(model, "feature_names_in_", None)
        pairs = Paired.load(self.dir / f"shadow-v{v.number}.f8")
        logger.info("%s: v%d in shadow beside champion v%s", self.cfg.model, v.number, self.champion)
        return _Shadow(v.number, model, [str(n) for n in names] if names is not None else None, rec, pairs)

    def _arm_after_manual_promotion(self, cur: int, previous: int, rec: dict[str, Any]) -> None:
        """A promotion by an operator (approval, ``aiopsd model promote``) is watched too."""
        comparison = rec.get("comparison") or {}
        if comparison.get("rows"):
            baseline = comparison.get("champion")  # the previous champion on the shadow rows so far
        elif self.recent:
            baseline = metric_value(self.metric, float(np.concatenate(list(self.recent)).mean()))
        else:
            return
        last = (self.store.history() or [{}])[-1]
        if self.life.watch_after_promotion is None or last.get("kind") != "promote" or last.get("version") != cur:
            return  # a rollback (ours or by hand) is not watched
        decision = rec.get("decision") or {"outcome": "promoted", "by": "outside aiopsd", "at": stamp()}
        rec = {**rec, "state": "watching", "decision": decision, "watch": self._watch_spec(previous, baseline)}
        self.watch = _Watch(cur, rec, saved=False)  # its record is written at commit

    def _watch_spec(self, previous: int | None, baseline: float | None) -> dict[str, Any]:
        since = self.log_time if math.isfinite(self.log_time) else datetime.now(UTC).timestamp()
        assert self.life.watch_after_promotion is not None
        return {
            "previous": previous,
            "baseline": baseline,
            "since": since,
            "until": since + self.life.watch_after_promotion,
            "margin": self.life.rollback_margin,
            "outcome": "watching",
        }

    # --------------------------------------------------------------- observe
    def observe(self, w: PredictionWindow) -> None:
        """Keep a window's labelled rows; they are scored together, once per poll, at :meth:`commit`."""
        if math.isfinite(w.end):
            self.log_time = max(self.log_time, w.end)
        if w.kind == "labels" and self.champion is not None and "label" in w.frame.columns:
            self._frames.append(w.frame)

    def _score(self) -> None:
        """This poll's labelled rows served by the champion: its scores, and the challenger's beside them."""
        frames, self._frames = self._frames, []
        if not frames:
            return
        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        keep = frame["label"].notna().to_numpy() & frame["prediction"].notna().to_numpy()
        if "version" in frame.columns:
            version = frame["version"]
            keep &= (version.isna() | (version.astype(str) == str(self.champion))).to_numpy()
        if not keep.all():
            frame = frame[keep]
        if frame.empty:
            return
        ts = pd.to_numeric(frame["timestamp"], errors="coerce").to_numpy(float)
        y, served = frame["label"].to_numpy(), frame["prediction"].to_numpy()
        scores = row_scores(self.metric, y, served)
        self._recent_pending.append(scores)
        if self.watch is not None and self.watch.version == self.champion and self.life.watch_on == "realised":
            spec = self.watch.spec
            self.watch.pending.append(scores[(ts > spec["since"]) & (ts <= spec["until"])])
        if self.shadow is not None:
            self._score_shadow(frame, ts, y, scores)

    def _score_shadow(self, frame: pd.DataFrame, ts: Array, y: Any, scores: Array) -> None:
        sh = self.shadow
        assert sh is not None
        keep = ts > float(sh.record["since"])
        span = self.life.shadow
        if span is not None and span.for_ is not None:
            keep &= ts < float(sh.record["since"]) + span.for_
        idx = np.flatnonzero(keep)
        if span is not None and span.rows is not None:
            idx = idx[: max(0, span.rows - sh.pairs.rows)]
        if len(idx) == 0:
            return
        rows = frame.iloc[idx]
        features = sh.features or [c for c in rows.columns if c not in _RESERVED]
        try:
            predicted = np.asarray(sh.model.predict(rows[features]))
        except Exception as exc:  # a challenger that cannot score live rows is rejected, never served
            sh.error = f"{type(exc).__name__}: {str(exc)[:200]}"
            return
        sh.pairs.pending.append((scores[idx], row_scores(self.metric, y[idx], predicted)))

    def estimated(self, w: PredictionWindow, value: float) -> None:
        """``watch_on: estimated``: a window's estimated metric (CBPE/DLE) stands for each of its rows.

        Only windows wholly after the promotion and served by the champion alone count."""
        watch, versions = self.watch, set(w.versions)
        if watch is None or self.life.watch_on != "estimated" or not math.isfinite(value):
            return
        if watch.version == self.champion and versions <= {str(self.champion)}:
            spec = watch.spec
            if spec["since"] < w.start and w.end <= spec["until"]:
                score = value if self.metric == "accuracy" else -value
                watch.pending.append(np.full(w.rows, score, dtype=np.float64))

    def rollback(self) -> None:
        """The poll's findings were not stored: forget what it scored."""
        self._frames, self._recent_pending = [], []
        if self.shadow is not None:
            self.shadow.pairs.pending = []
        if self.watch is not None:
            self.watch.pending = []

    # ---------------------------------------------------------------- decide
    def commit(self, now: float) -> None:
        """Score this poll's rows and keep them, then take the decisions they complete (registry errors:
        next poll)."""
        self._score()
        for s in self._recent_pending:
            self.recent.append(s)
        while sum(len(a) for a in self.recent) > RECENT_ROWS and len(self.recent) > 1:
            self.recent.popleft()
        self._recent_pending = []
        try:
            for v in self._todo:
                self._finish(v)
            self._todo = []
            if self.shadow is not None:
                self._judge_shadow(self.shadow, now)
            if self.watch is not None:
                self._judge_watch(self.watch, now)
        except (RegistryError, OSError) as exc:
            logger.warning("%s: lifecycle decision deferred, %s: %s", self.cfg.model, self.store.label, exc)
            self._refreshed = -math.inf  # re-read the store before trying again

    def _judge_shadow(self, sh: _Shadow, now: float) -> None:
        sh.pairs.commit()
        span, since = self.life.shadow, float(sh.record["since"])
        if span is not None and span.rows is not None:
            done = sh.pairs.rows >= span.rows
        else:
            done = span is not None and span.for_ is not None and self.log_time >= since + span.for_
        done = done or sh.error is not None
        if not done and now - sh.written < PROGRESS_SECONDS:
            return  # the bootstrap runs for a progress write or the decision, not every poll
        champion, challenger = sh.pairs.arrays()
        c = compare(self.metric, champion, challenger, confidence=self.life.confidence, seed=sh.version)
        sh.record["comparison"] = comparison_record(c, self.life.min_improvement)
        if not done:
            self.store.mark(sh.version, lifecycle=sh.record)
            sh.written = now
            return
        if c.wins_by(self.life.min_improvement) and sh.error is None:
            reason = (
                f"shadow: {c.metric} {c.challenger:.4g} vs champion {c.champion:.4g} on {c.rows} rows,"
                f" advantage {c.advantage.mean:+.4g} [{c.advantage.low:+.4g}, {c.advantage.high:+.4g}]"
                f" >= {self.life.min_improvement}"
            )
            decision = {"outcome": "promote", "by": "shadow", "at": stamp(), "reason": reason}
            rec = {**sh.record, "state": "promoting", "decision": decision}
            self.store.mark(sh.version, lifecycle=rec)
            self._finish(self.store.get(sh.version))
        else:
            reason = (
                f"shadow: the challenger failed to score the logged rows ({sh.error})"
                if sh.error
                else (
                    f"shadow: advantage {c.advantage.mean:+.4g} [{c.advantage.low:+.4g}, {c.advantage.high:+.4g}]"
                    f" on {c.rows} rows does not reach {self.life.min_improvement} at its lower bound"
                )
            )
            decision = {"outcome": "reject", "by": "shadow", "at": stamp(), "reason": reason}
            rec = {**sh.record, "state": "rejected", "decision": decision}
            self.store.mark(sh.version, status="rejected", lifecycle=rec)
            self._audit("model_rejected", sh.version, rec)
        self.shadow = None
        self._refreshed = -math.inf

    def _finish(self, v: ModelVersion) -> None:
        """Complete a switch whose record says it started: move the pointer if not moved, audit, settle."""
        rec = dict(record_of(v))
        state = rec.get("state")
        if state == "promoting":
            previous = rec.get("champion")
            if self.store.current() != v.number:
                self.store.promote(v.number, reason=str(rec.get("decision", {}).get("reason", "shadow")))
            self._audit("model_promoted", v.number, rec)
            comparison = rec.get("comparison") or {}
            baseline = comparison.get("champion") if comparison.get("rows") else None
            if self.life.watch_after_promotion is not None and baseline is not None:
                rec.update(state="watching", watch=self._watch_spec(previous, baseline))
            else:
                rec["state"] = "champion"
            self.store.mark(v.number, lifecycle=rec)
        elif state == "rolling_back":
            to = int(rec["watch"]["previous"])
            if self.store.current() == v.number:
                self.store.rollback(to=to)
            self._audit("model_rolled_back", v.number, rec)
            self.store.mark(v.number, lifecycle={**rec, "state": "rolled_back"})
        self._refreshed = -math.inf

    def _judge_watch(self, w: _Watch, now: float) -> None:
        if not w.saved:
            self.store.mark(w.version, lifecycle=w.record)
            self._audit("model_watch_armed", w.version, w.record)
            w.saved = True
        new = [s for s in w.pending if len(s)]
        w.scores += new
        w.pending = []
        if not new and self.log_time <= float(w.spec["until"]):
            return  # nothing new to judge
        spec = w.spec
        scores = np.concatenate(w.scores) if w.scores else np.empty(0)
        baseline = spec.get("baseline")
        if baseline is None or spec.get("previous") is None:
            return
        base_score = baseline if self.metric == "accuracy" else -float(baseline)
        hit, bound = regressed(
            scores, baseline=base_score, margin=self.life.rollback_margin, confidence=self.life.confidence
        )
        spec.update(rows=bound.rows, value=finite(metric_value(self.metric, bound.mean)) if bound.rows else None)
        lo, hi = sorted(metric_value(self.metric, x) for x in (bound.low, bound.high))
        if bound.rows >= self.life.rollback_min_rows and hit and not self.life.auto_rollback:
            spec.update(outcome="regressed (auto_rollback off)", low=lo, high=hi)
        if bound.rows >= self.life.rollback_min_rows and hit and self.life.auto_rollback:
            reason = (
                f"regression: {self.metric} {metric_value(self.metric, bound.mean):.4g} [{lo:.4g}, {hi:.4g}] on"
                f" {bound.rows} rows vs previous v{spec['previous']} {baseline:.4g}, margin {self.life.rollback_margin}"
            )
            spec.update(outcome="rolled_back", low=lo, high=hi, reason=reason)
            rec = {**w.record, "state": "rolling_back", "watch": spec}
            self.store.mark(w.version, lifecycle=rec)
            self._finish(self.store.get(w.version))
            self.watch = None
        elif self.log_time > float(spec["until"]):
            spec["outcome"] = "passed" if spec["outcome"] == "watching" else spec["outcome"]
            self.store.mark(w.version, lifecycle={**w.record, "state": "watched", "watch": spec})
            self.watch = None
        elif now - w.written >= PROGRESS_SECONDS:  # the card shows the watch's rows and value so far
            w.record = {**w.record, "watch": spec}
            self.store.mark(w.version, lifecycle=w.record)
            w.written = now

    def _audit(self, kind: str, version: int, rec: dict[str, Any]) -> None:
        event = {"model": self.cfg.model, "store": self.store.label, "version": version, "lifecycle": rec}
        self.auditor.audit(kind, datetime.now(UTC), event)
