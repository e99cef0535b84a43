"""Config of a prediction log's model lifecycle: shadow (champion/challenger) and rollback on regression.

``lifecycle:`` on a prediction log (see docs/ml-monitoring.md, "Model lifecycle")::

    lifecycle:
      shadow: {rows: 500}          # or {for: 1h}: the challenger is compared on that much of the log
      metric: accuracy             # default: accuracy (classification), mae (regression)
      min_improvement: 0.02        # the challenger must win by this much (metric units) ...
      confidence: 0.95             # ... at the lower bound of this two-sided bootstrap interval
      watch_after_promotion: 1h    # log time after a promotion during which a regression rolls back
      rollback_margin: 0.05        # the champion falls below the previous version by this much ...
      rollback_min_rows: 200       # ... (upper bound, same confidence), judged once this many rows
      auto_rollback: true
      watch_on: realised           # or estimated: the log's CBPE/DLE estimate (needs estimate, same metric)
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from aiopsd.durations import PositiveDuration
from aiopsd.models import Frozen

ShadowMetric = Literal["accuracy", "mae", "mse"]


class ShadowSpan(Frozen):
    """How much of the prediction log the challenger is compared on: ``rows`` labelled rows or ``for`` log time."""

    model_config = Frozen.model_config | {"populate_by_name": True}

    rows: int | None = Field(default=None, ge=30, le=1_000_000)
    for_: PositiveDuration | None = Field(default=None, alias="for")

    @model_validator(mode="after")
    def _one_bound(self) -> ShadowSpan:
        if (self.rows is None) == (self.for_ is None):
            raise ValueError("shadow needs exactly one of rows (e.g. {rows: 500}) or for (e.g. {for: 1h})")
        return self


class LifecycleConfig(Frozen):
    """What happens to a retrained candidate that passed the offline gate, and after it is promoted."""

    shadow: ShadowSpan | None = None
    metric: ShadowMetric | None = None
    min_improvement: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    watch_after_promotion: PositiveDuration | None = None
    rollback_margin: float = Field(default=0.05, ge=0, allow_inf_nan=False)
    rollback_min_rows: int = Field(default=200, ge=30)
    auto_rollback: bool = True
    # What the regression watch judges: labels (realised) or, before labels come, the log's
    # estimated performance (``estimate``: CBPE / DLE, same metric).
    watch_on: Literal["realised", "estimated"] = "realised"

    def metric_for(self, task: str) -> ShadowMetric:
        return self.metric or ("mae" if task == "regression" else "accuracy")
