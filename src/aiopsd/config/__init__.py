"""Settings: one YAML file, overridden by ``AIOPSD_*`` environment variables, validated on load.

``settings.py`` holds :class:`Settings` and the loader; ``sources.py`` and ``sections.py`` its parts.
"""

from aiopsd.config.sections import (
    ActionsConfig,
    AlertsConfig,
    ApprovalsConfig,
    AWXConfig,
    HAConfig,
    ShardingConfig,
    SilencesConfig,
    WebhookAuth,
    WebhookConfig,
)
from aiopsd.config.settings import Settings, format_loc, load_settings
from aiopsd.config.sources import DriftWindow, EstimateConfig, PredictionLogConfig, PrometheusConfig, WatchConfig

__all__ = [
    "AWXConfig",
    "ActionsConfig",
    "AlertsConfig",
    "ApprovalsConfig",
    "DriftWindow",
    "EstimateConfig",
    "HAConfig",
    "PredictionLogConfig",
    "PrometheusConfig",
    "Settings",
    "ShardingConfig",
    "SilencesConfig",
    "WatchConfig",
    "WebhookAuth",
    "WebhookConfig",
    "format_loc",
    "load_settings",
]
