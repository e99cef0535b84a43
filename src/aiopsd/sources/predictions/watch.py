"""Prediction-log watches: tail, cut windows, test drift against the reference, report.

One finding per drift *episode* (like anomaly incidents): it opens on the first
drifted window, continues while windows drift, and resolves on a clean window.
When it opens, an Evidently report for that window is rendered as the evidence,
and the window (with its labels) is saved so a retrain rule can train on it.
With ``segment_by`` each segment's drift, and with ``estimate`` the estimated performance of the
window (and of each segment), are episodes of their own (:mod:`.episodes`, :mod:`.performance`),
told apart by the labels ``segment`` and ``test: estimated_performance``.
The tailer's cursor is committed only after the findings are stored (``Poll.commit``), so a
crash or a failed write re-reads (never skips) rows, and the deterministic finding ids make that
harmless. A log or reference that cannot be read is a ``SourceError``: the source is down.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd

from aiopsd.config import PredictionLogConfig, Settings
from aiopsd.detectors.anomaly.incidents import Event
from aiopsd.detectors.drift.profile import ReferenceProfile, profile_reference
from aiopsd.detectors.drift.segments import SegmentSet, profile_segment_set, segment_parts
from aiopsd.detectors.drift.window import DEFAULT_ALPHA, DriftResult, test_window
from aiopsd.errors import SourceError
from aiopsd.model_store import open_store, spec_for
from aiopsd.models import Finding, SourceKind
from aiopsd.sources.base import Poll, SourceMetrics, SourceSpec, SourceStore
from aiopsd.sources.predictions.episodes import ESTIMATED, WHOLE, Episodes, Key, episode_finding, key_labels
from aiopsd.sources.predictions.explain import columns, explanation
from aiopsd.sources.predictions.lifecycle import ModelLifecycle
from aiopsd.sources.predictions.performance import PerformanceJudge
from aiopsd.sources.predictions.tail import PredictionLogTailer
from aiopsd.sources.predictions.windows import PredictionWindow, WindowSpec

logger = logging.getLogger(__name__)

META_COLUMNS = ("timestamp", "model", "version", "prediction_id")
__all__ = ["DriftWatch", "explanation", "plan"]


class DriftWatch:
    """Watches one model's prediction log (a :class:`~aiopsd.sources.base.Source`)."""

    kind = SourceKind.PREDICTION_LOG
    leader_only = True  # one cursor, one episode

    def __init__(self, cfg: PredictionLogConfig, store: SourceStore, metrics: SourceMetrics, state_dir: Path) -> None:
        self.cfg = cfg
        self.store = store
        self.metrics = metrics
        self.source = f"predictions:{cfg.model}"
        self.dir = state_dir / "drift" / cfg.model
        self.tailer = PredictionLogTailer(
            name=self.source,
            pattern=cfg.path,
            store=store,
            model=cfg.model,
            window=WindowSpec(rows=cfg.window.rows, seconds=cfg.window.seconds),
            fmt=None if cfg.format == "auto" else cfg.format,
        )
        self.reference: pd.DataFrame | None = None
        self.profile: ReferenceProfile | None = None
        self._partial: pd.DataFrame | None = None  # reference rows so far, while no reference exists
        self.segments: SegmentSet | None = None
        self.performance: PerformanceJudge | None = None
        self._exports: list[tuple[str, dict[str, float]]] = []  # performance gauges, set on commit
        self.episodes = Episodes(self.source, store)
        self.lifecycle = _lifecycle(cfg, store, state_dir)

    @property
    def name(self) -> str:
        return self.source

    @property
    def interval(self) -> float:
        return self.cfg.interval

    def close(self) -> None:
        self.metrics.performance.forget(self.cfg.model)

    # ------------------------------------------------------------ reference
    @property
    def reference_csv(self) -> Path:
        return self.dir / "reference.csv"

    def _load_reference(self) -> bool:
        if self.profile is not None:
            return True
        path = self.cfg.reference if self.cfg.reference is not None else self.reference_csv
        if not path.is_file():
            return False
        ref = pd.read_csv(path) if path.suffix == ".csv" else pd.read_json(path, lines=True)
        self._set_reference(ref)
        return True

    def _set_reference(self, ref: pd.DataFrame) -> None:
        ref = ref.drop(columns=[c for c in META_COLUMNS if c in ref.columns])
        label = "label" if "label" in ref.columns and ref["label"].notna().any() else None
        kwargs: dict[str, Any] = {
            "prediction": "prediction" if "prediction" in ref.columns else None,
            "label": label,
            "task": self.cfg.task,
        }
        try:
            segments = (
                profile_segment_set(ref, self.cfg.segment_by, max_segments=self.cfg.max_segments, **kwargs)
                if self.cfg.segment_by
                else None
            )
            performance = PerformanceJudge(self.cfg, ref, segments) if self.cfg.estimate is not None else None
        except ValueError as exc:
            raise SourceError(f"{self.source}: {exc}") from exc
        self.profile = profile_reference(ref, **kwargs)
        self.segments, self.performance, self.reference = segments, performance, ref

    def _grow_reference(self, frame: pd.DataFrame) -> None:
        """No reference file: the first ``reference_rows`` rows logged become the reference.

        Grown in memory; :meth:`_save_reference` writes it once the poll's findings are stored.
        """
        if self._partial is None:
            part = self.dir / "reference.partial.csv"
            self._partial = pd.read_csv(part) if part.is_file() else frame.iloc[0:0]
        self._partial = pd.concat([self._partial, frame], ignore_index=True)
        if len(self._partial) >= self.cfg.reference_rows:
            self._set_reference(self._partial)
            logger.info("%s: reference profiled from the first %d rows", self.source, len(self._partial))

    def _save_reference(self) -> None:
        if self._partial is None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        part = self.dir / "reference.partial.csv"
        self._partial.to_csv(part, index=False)
        if self.profile is not None:
            part.replace(self.reference_csv)
            self._partial = None

    # ----------------------------------------------------------------- poll
    def poll(self, now: float) -> Poll:
        """Judge the windows completed since the last poll whose findings were stored.

        Offsets, the episode tracker and a growing reference advance only once the findings
        are stored (``Poll.commit``): if judging a window or storing its finding fails, the next
        poll reads and judges the same rows again.
        """
        try:
            windows, stats = self.tailer.poll()
            if not self._load_reference() and self.cfg.reference is not None:
                raise FileNotFoundError(f"reference file {self.cfg.reference} not found")
        except (OSError, ValueError) as exc:
            raise SourceError(str(exc)) from exc
        if self.lifecycle is not None:
            self.lifecycle.refresh(now)
        kept = (self.episodes.snapshot(), self.profile, self.segments, self.performance, self.reference, self._partial)
        self._exports = []

        def rollback() -> None:
            episodes, self.profile, self.segments, self.performance, self.reference, self._partial = kept
            self.episodes.restore(episodes)
            self._exports = []
            if self.lifecycle is not None:
                self.lifecycle.rollback()

        try:
            findings, newest = self._judge_all(windows)
        except Exception:
            rollback()
            raise

        def commit() -> None:
            self._save_reference()
            self.tailer.commit()
            if stats.bad_rows:
                self.metrics.bad_rows.labels(self.cfg.model).inc(stats.bad_rows)
            for metric, values in self._exports:
                self.metrics.performance.set(self.cfg.model, metric, values)
            self._exports = []
            if self.lifecycle is not None:
                self.lifecycle.commit(now)

        return Poll(
            findings=findings, lag=now - newest if newest > -math.inf else None, commit=commit, rollback=rollback
        )

    def _judge_all(self, windows: list[PredictionWindow]) -> tuple[list[Finding], float]:
        findings: list[Finding] = []
        newest = -math.inf
        for w in windows:
            if w.rows == 0:
                continue
            if self.lifecycle is not None:
                self.lifecycle.observe(w)
            if w.kind == "labels":
                if self.performance is not None:
                    self._labelled(w)
                continue
            newest = max(newest, w.end)
            if self.profile is None:
                self._grow_reference(w.frame)
                continue
            findings.extend(self._judge(w))
        return findings, newest

    def _labelled(self, w: PredictionWindow) -> None:
        """Labels arrived for these rows: the realised metric beside the estimate, for ``/metrics``."""
        assert self.performance is not None
        values = self.performance.labelled(w.frame)
        self._exports.append((self.performance.metric, values))
        logger.info(
            "%s: %d labelled rows, %s estimated %.4f, realised %.4f",
            self.source,
            w.rows,
            self.performance.metric,
            values["estimate_labelled"],
            values["realised"],
        )

    def _judge(self, w: PredictionWindow) -> list[Finding]:
        assert self.profile is not None
        frame = w.frame.drop(columns=[c for c in META_COLUMNS if c in w.frame.columns])
        parts = segment_parts(self.segments, frame) if self.segments is not None else {}
        share = DEFAULT_ALPHA / (1 + len(parts))  # one budget over the whole window and its segments
        result = test_window(self.profile, frame, alpha=share)
        out = [f for f in [self._whole(w, frame, result)] if f is not None]
        for key, part in parts.items():
            assert self.segments is not None
            seg = test_window(self.segments.segments[key][1], part, alpha=share)
            rows = frame.loc[part.index]  # with the segment column: a retrain needs every feature
            out += self._episode(w, ("", key), seg.score if seg.drift else 0.0, lambda r=seg: columns(r), rows)
        if self.performance is not None:
            out += self._estimates(w, frame, parts)
        return out

    def _estimates(self, w: PredictionWindow, frame: pd.DataFrame, parts: dict[str, pd.DataFrame]) -> list[Finding]:
        perf = self.performance
        assert perf is not None
        est = perf.estimate(frame)
        self._exports.append((perf.metric, {"estimate": est.estimated}))
        if self.lifecycle is not None:
            self.lifecycle.estimated(w, est.estimated)
        out = self._episode(w, (ESTIMATED, ""), perf.score(est), lambda: perf.details(est), frame)
        for key, part in parts.items():
            seg = perf.segment_estimate(key, part)
            if seg is not None:
                rows = frame.loc[part.index]
                out += self._episode(w, (ESTIMATED, key), perf.score(seg), lambda s=seg: perf.details(s), rows)
        return out

    def _episode(self, w: PredictionWindow, key: Key, score: float, details: Any, rows: pd.DataFrame) -> list[Finding]:
        """A segment's drift or an estimate of ``rows``: one episode per key, labels ``test``/``segment``."""
        seen = self.episodes.observe(key, w.end, score)
        if seen is None:
            return []
        event, fid, start = seen
        test, segment = key
        info: dict[str, Any] = {"model": self.cfg.model, "window_rows": len(rows), "window_start": w.start}
        info.update({"window_end": w.end, **({"segment": segment} if segment else {}), **details()})
        if event != Event.RESOLVED:
            info.update(self._evidence(fid, rows))
        where = f" in segment {segment}" if segment else ""
        if event == Event.RESOLVED:
            summary = f"{self.cfg.model}: {'estimated performance' if test else 'no drift'}{where} back within bounds"
        elif test:
            summary = (
                f"{self.cfg.model}: estimated {info['metric']} {info['estimated_value']:.3f}{where},"
                f" reference {info['reference_value']:.3f}"
            )
        else:
            summary = f"{self.cfg.model}: drift{where} in {', '.join(info['drifted'])}"
        versions = ",".join(w.versions)
        labels = {"model": self.cfg.model, **({"version": versions} if versions else {}), **key_labels(key)}
        if test:
            labels["metric"] = str(info["metric"])
        return [
            episode_finding(
                fid=fid,
                event=event,
                source=self.source,
                labels=labels,
                score=score,
                start=start,
                end=w.end,
                summary=summary,
                details=info,
            )
        ]

    def _whole(self, w: PredictionWindow, frame: pd.DataFrame, result: DriftResult) -> Finding | None:
        seen = self.episodes.observe(WHOLE, w.end, result.score if result.drift else 0.0)
        if seen is None:
            return None
        event, fid, start = seen
        details: dict[str, Any] = {
            "model": self.cfg.model,
            "window_rows": w.rows,
            "window_start": w.start,
            "window_end": w.end,
            **columns(result),
        }
        if event != Event.RESOLVED:
            details.update(self._evidence(fid, frame))
        if event == Event.OPENED and self.cfg.reports:
            details.update(self._report(fid, frame))
        versions = ",".join(w.versions)
        summary = (
            f"{self.cfg.model}: drift in {', '.join(result.drifted)}"
            if event != Event.RESOLVED
            else f"{self.cfg.model}: no drift in the latest window of {w.rows} rows"
        )
        return episode_finding(
            fid=fid,
            event=event,
            source=self.source,
            labels={"model": self.cfg.model, **({"version": versions} if versions else {})},
            score=result.score,
            start=start,
            end=w.end,
            summary=summary,
            details=details,
        )

    def _evidence(self, fid: str, frame: pd.DataFrame) -> dict[str, Any]:
        """Save the window's rows (with their labels, where known): what a retrain rule trains on."""
        saved = self.dir / "windows" / f"{fid}.csv"
        saved.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(saved, index=False)
        return {
            "window_csv": str(saved),
            "reference_csv": str(self._reference_path()),
            "features": [c for c in frame.columns if c not in ("prediction", "label")],
            "model_dir": str(self.cfg.model_dir) if self.cfg.model_dir else None,
        }

    def _reference_path(self) -> Path:
        return self.cfg.reference if self.cfg.reference is not None else self.reference_csv

    def _report(self, fid: str, frame: pd.DataFrame) -> dict[str, Any]:
        from aiopsd.reports.evidently_report import render_drift_report

        assert self.reference is not None
        try:
            cols = [c for c in self.reference.columns if c != "label" and c in frame.columns]
            paths = render_drift_report(self.reference[cols], frame[cols], self.dir / "reports" / fid, name="drift")
        except Exception as exc:  # the report is evidence, not the detection: never lose the finding over it
            logger.warning("%s: Evidently report failed: %s", self.source, exc)
            return {"report_error": str(exc)}
        return {"report_html": str(paths.html), "report_json": str(paths.json)}


def _lifecycle(cfg: PredictionLogConfig, store: SourceStore, state_dir: Path) -> ModelLifecycle | None:
    spec = spec_for(cfg.model_store, model=cfg.model, model_dir=cfg.model_dir) if cfg.lifecycle else None
    return ModelLifecycle(cfg, open_store(spec), store, state_dir) if spec is not None else None


def plan(settings: Settings) -> list[SourceSpec]:
    """One source per configured prediction log."""

    def spec(cfg: PredictionLogConfig) -> SourceSpec:
        return SourceSpec(
            SourceKind.PREDICTION_LOG,
            f"predictions:{cfg.model}",
            cfg,
            lambda env: DriftWatch(cfg, env.store, env.metrics, settings.state_dir),
        )

    return [spec(p) for p in settings.prediction_logs]
