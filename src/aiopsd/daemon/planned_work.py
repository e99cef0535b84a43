"""Feed the engine what planned work there is now: maintenance windows (config + CLI) and Alertmanager silences."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from aiopsd.config import Settings
from aiopsd.engine.evaluate import EngineState
from aiopsd.engine.maintenance import MaintenanceWindow
from aiopsd.sources.silences import SilenceCache
from aiopsd.store import StateStore
from aiopsd.store.maintenance import list_windows

logger = logging.getLogger(__name__)


class PlannedWork:
    """Holds the silence cache across ticks; settings are passed each time, so a reload takes effect."""

    def __init__(self) -> None:
        self._cache: SilenceCache | None = None
        self._cache_key: tuple[str, float, float] | None = None

    def _silences(self, settings: Settings) -> SilenceCache | None:
        cfg = settings.alertmanager_silences
        if not cfg.enabled or not settings.alertmanager_url:
            return None
        key = (settings.alertmanager_url, cfg.timeout, cfg.ttl)
        if self._cache is None or self._cache_key != key:
            self._cache, self._cache_key = SilenceCache(key[0], timeout=cfg.timeout, ttl=cfg.ttl), key
        return self._cache

    def apply(self, settings: Settings, state: EngineState, store: StateStore, now: datetime) -> EngineState:
        windows = list(settings.maintenance)
        for stored in list_windows(store, now=now):
            try:
                windows.append(MaintenanceWindow(**stored.as_window_data()))
            except ValueError as exc:  # a row written by hand; the CLI validates what it stores
                logger.error("maintenance window %r in the state store is invalid: %s", stored.name, exc)
        cache = self._silences(settings)
        if cache is None:
            return replace(state, maintenance=windows)
        view = cache.view()
        return replace(
            state, maintenance=windows, silences=view.silences, silences_down=None if view.up else view.error
        )
