"""Every polled source kind, and how the config names its sources: one entry per kind.

A new kind is its module (a ``Source`` and a ``plan(settings) -> list[SourceSpec]``) plus one
entry here; the daemon schedules, runs and reloads every source from these specs alike.
Alertmanager is a source kind too, but pushed (the webhook), not polled: it has no entry.
"""

from __future__ import annotations

from aiopsd.config import Settings
from aiopsd.models import SourceKind
from aiopsd.sources.base import SourcePlan, SourceSpec
from aiopsd.sources.predictions import watch as predictions
from aiopsd.sources.prometheus import watch as prometheus

PLANS: dict[SourceKind, SourcePlan] = {
    SourceKind.PROMETHEUS: prometheus.plan,
    SourceKind.PREDICTION_LOG: predictions.plan,
}


def source_specs(settings: Settings) -> list[SourceSpec]:
    """The specs of every configured polled source, in registry order then config order."""
    return [spec for plan in PLANS.values() for spec in plan(settings)]
