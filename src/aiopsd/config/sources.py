"""Config of the polled sources: Prometheus, its watches, prediction logs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from aiopsd.config.lifecycle import LifecycleConfig
from aiopsd.durations import Duration, PositiveDuration
from aiopsd.model_store.base import StoreSpec
from aiopsd.models import Frozen

if TYPE_CHECKING:
    from aiopsd.detectors.anomaly.knobs import Knobs


class RemoteWriteConfig(Frozen):
    """Where watches with ``export: {scores: remote_write}`` push their scores (Prometheus remote write 1.0)."""

    # Default: the receiver of ``prometheus.url`` (Prometheus started with --web.enable-remote-write-receiver).
    url: str | None = None
    timeout: PositiveDuration = 10.0
    # Samples waiting to be sent at most; beyond it the oldest are dropped (and counted).
    max_queue: int = Field(default=2_000_000, ge=1)
    # Time series (one sample each) per request.
    batch: int = Field(default=20_000, ge=1)
    # Retries of a failed request (5xx, 429, no connection) back off exponentially up to this.
    max_backoff: PositiveDuration = 30.0


class PrometheusConfig(Frozen):
    url: str = "http://127.0.0.1:9090"
    timeout: PositiveDuration = 10.0
    # Samples this close to "now" may still be arriving; they are re-read next poll.
    overlap: Duration = 60.0
    # A series whose newest sample is older than this is stale: no decisions from it.
    stale_after: PositiveDuration = 300.0
    # Samples (series x points) one range request may ask for: longer reads (a warm-up's
    # lookback) are split in chunks of this size. Kept well below Prometheus'
    # --query.max-samples (50,000,000 by default), which counts more than the answer.
    max_samples_per_query: int = Field(default=2_000_000, ge=1000)
    remote_write: RemoteWriteConfig = RemoteWriteConfig()

    @property
    def remote_write_url(self) -> str:
        return self.remote_write.url or f"{self.url.rstrip('/')}/api/v1/write"


class ScoreExportConfig(Frozen):
    """Where a watch's per-series scores and bands go.

    ``metrics``: every series on ``/metrics`` (fine up to a few thousand series);
    ``remote_write``: every scored point pushed to Prometheus' remote-write receiver, and on
    ``/metrics`` only the series whose incident is open; ``none``: only those on ``/metrics``.
    """

    scores: Literal["metrics", "remote_write", "none"] = "metrics"


class WatchConfig(Frozen):
    """One PromQL expression polled with query_range and scored per series."""

    name: str = Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_:.-]*$")
    query: str = Field(min_length=1)
    step: PositiveDuration = 30.0
    interval: PositiveDuration = 30.0
    detector: str = "default"
    detector_params: dict[str, Any] = Field(default_factory=dict)
    # History read on the first poll to warm the detector up.
    lookback: PositiveDuration = 3600.0
    # Consecutive normal points that close an open anomaly incident; also the polls after which
    # a vanished series' exported score gauges are dropped.
    resolve_after: int = Field(default=5, ge=1)
    # Series tracked at most (one detector each); the excess is refused, counted and shown.
    max_series: int = Field(default=2000, ge=1)
    # Noise knobs (docs/anomaly.md): which side of the band alerts, how far from it a value must be
    # (absolute, and relative to |yhat|), and how long after a series first appears nothing alerts.
    direction: Literal["up", "down", "both"] = "both"
    min_deviation: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    min_relative_deviation: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    warmup: Duration = 0.0
    export: ScoreExportConfig = ScoreExportConfig()

    @model_validator(mode="after")
    def _positive(self) -> WatchConfig:
        if self.step <= 0 or self.interval <= 0:
            raise ValueError("step and interval must be greater than 0")
        return self

    @field_validator("detector")
    @classmethod
    def _known_detector(cls, value: str) -> str:
        from aiopsd.detectors.anomaly import DETECTORS

        if value not in DETECTORS:
            raise ValueError(f"unknown detector {value!r}; known: {', '.join(sorted(DETECTORS))}")
        return value

    @field_validator("detector_params")
    @classmethod
    def _valid_params(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Parameters are checked against the detector's declared constraints at load, not in the poll loop."""
        from aiopsd.detectors.anomaly import validate_detector_params

        if "detector" in info.data:  # else the detector name itself is the error reported
            validate_detector_params(info.data["detector"], value)
        return value

    @field_validator("warmup")
    @classmethod
    def _non_negative(cls, value: float) -> float:
        if value < 0:
            raise ValueError("warmup must be >= 0")
        return value

    @model_validator(mode="after")
    def _knobs_fit_the_detector(self) -> WatchConfig:
        from aiopsd.detectors.anomaly import make_detector
        from aiopsd.detectors.anomaly.knobs import knob_problem

        problem = knob_problem(make_detector(self.detector, **self.detector_params), self.knobs)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def knobs(self) -> Knobs:
        """The noise knobs of this watch, for :func:`aiopsd.detectors.anomaly.knobs.with_knobs`."""
        from aiopsd.detectors.anomaly.knobs import Knobs

        return Knobs(self.direction, self.min_deviation, self.min_relative_deviation, self.warmup)


class DriftWindow(Frozen):
    """A window closes after ``rows`` rows or ``seconds`` of rows, whichever comes first."""

    rows: int | None = Field(default=500, ge=20)
    seconds: PositiveDuration | None = None

    @model_validator(mode="after")
    def _some_bound(self) -> DriftWindow:
        if self.rows is None and self.seconds is None:
            raise ValueError("a window needs rows, seconds or both")
        return self


class EstimateConfig(Frozen):
    """Performance estimation before labels arrive: CBPE (classification) or DLE (regression).

    Fitted on the labelled reference; an estimated drop beyond ``max_drop`` (absolute for accuracy/F1,
    relative for MAE; default 0.05 and 0.2) is a drift finding with label ``test: estimated_performance``.
    """

    metric: Literal["accuracy", "f1", "mae"] | None = None  # default: accuracy, or mae for regression
    max_drop: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    # CBPE: the column with the model's probability of the positive class 1, and the decision threshold.
    score: str = Field(default="score", min_length=1)
    threshold: float = Field(default=0.5, gt=0, lt=1)


RESERVED_COLUMNS = ("timestamp", "model", "version", "prediction", "label", "prediction_id")


class PredictionLogConfig(Frozen):
    """One model's prediction log (JSONL or CSV files; a path or a glob), checked for drift."""

    model: str = Field(pattern=r"^[a-zA-Z0-9_.-]+$")
    path: str
    format: Literal["auto", "jsonl", "csv"] = "auto"
    # The reference the windows are compared with: a CSV/JSONL file, or else the first rows logged.
    reference: Path | None = None
    reference_rows: int = Field(default=1000, ge=100)
    window: DriftWindow = DriftWindow()
    interval: PositiveDuration = 30.0
    task: Literal["classification", "regression"] = "classification"
    # Where the served model lives (versions/<n>/, current): retrain rules act on it.
    model_dir: Path | None = None
    # Or another model store: {kind: mlflow, tracking_uri: ..., name: ...} (name defaults to ``model``).
    model_store: StoreSpec | None = None
    # Render an Evidently report (HTML + JSON) when drift fires.
    reports: bool = True
    # Estimate the model's performance on each window before its labels arrive.
    estimate: EstimateConfig | None = None
    # Also judge drift (and the estimate) per value of these feature columns, one shared budget;
    # per column the max_segments most frequent values are segments, the rest pool as "(other)".
    segment_by: list[str] = Field(default_factory=list, max_length=5)
    max_segments: int = Field(default=20, ge=1, le=200)
    # Shadow a retrained candidate before promoting it, and roll back on regression (docs/ml-monitoring.md).
    lifecycle: LifecycleConfig | None = None

    @field_validator("segment_by")
    @classmethod
    def _feature_columns(cls, value: list[str]) -> list[str]:
        for col in value:
            if not col or col in RESERVED_COLUMNS:
                raise ValueError(
                    f"segment_by {col!r} is not a feature column (reserved: {', '.join(RESERVED_COLUMNS)})"
                )
        if len(set(value)) != len(value):
            raise ValueError("segment_by lists a column twice")
        return value

    @model_validator(mode="after")
    def _metric_fits_the_task(self) -> PredictionLogConfig:
        if self.estimate is None:
            return self
        metric = self.estimate.metric
        if metric is not None and (metric == "mae") != (self.task == "regression"):
            fits = "mae" if self.task == "regression" else "accuracy or f1"
            raise ValueError(f"estimate.metric {metric} does not fit task {self.task}: use {fits}")
        if self.estimate.score in self.segment_by:
            raise ValueError(f"estimate.score {self.estimate.score!r} is also a segment_by column")
        return self

    @model_validator(mode="after")
    def _lifecycle_fits(self) -> PredictionLogConfig:
        if self.lifecycle is None:
            return self
        if self.model_dir is None and self.model_store is None:
            raise ValueError("lifecycle needs the model's store: set model_dir or model_store")
        metric = self.lifecycle.metric_for(self.task)
        if (metric == "accuracy") != (self.task == "classification"):
            fits = "mae or mse" if self.task == "regression" else "accuracy"
            raise ValueError(f"lifecycle.metric {metric} does not fit task {self.task}: use {fits}")
        if self.lifecycle.watch_on == "estimated" and self.estimate_metric != metric:
            raise ValueError(f"lifecycle.watch_on estimated needs estimate with metric {metric} on this log")
        return self

    @property
    def estimate_metric(self) -> Literal["accuracy", "f1", "mae"] | None:
        if self.estimate is None:
            return None
        return self.estimate.metric or ("mae" if self.task == "regression" else "accuracy")

    @model_validator(mode="after")
    def _store_has_a_place(self) -> PredictionLogConfig:
        if (
            self.model_store is not None
            and self.model_store.kind == "directory"
            and self.model_store.path is None
            and self.model_dir is None
        ):
            raise ValueError("a directory model_store needs path (or set model_dir)")
        return self
