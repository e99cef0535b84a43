"""One finding per incident, not one per anomalous point.

An incident opens at the first point scoring >= 1 and closes after
``resolve_after`` consecutive normal points. Pure: fed (timestamp, score) pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class Event(StrEnum):
    OPENED = "opened"
    CONTINUED = "continued"
    RESOLVED = "resolved"


@dataclass(slots=True)
class IncidentTracker:
    resolve_after: int = 5
    open_since: float | None = None
    # Start of the most recent incident, kept after it resolves (it names the incident).
    last_start: float | None = None
    last_anomalous: float | None = None
    peak: float = 0.0
    quiet: int = 0

    def observe(self, timestamp: float, score: float) -> Event | None:
        """Feed one scored point; returns what happened to the incident, if anything."""
        if math.isnan(score):
            return None
        if score >= 1.0:
            self.quiet = 0
            self.last_anomalous = timestamp
            if self.open_since is None:
                self.open_since = self.last_start = timestamp
                self.peak = score
                return Event.OPENED
            self.peak = max(self.peak, score)
            return Event.CONTINUED
        if self.open_since is None:
            return None
        self.quiet += 1
        if self.quiet >= self.resolve_after:
            self.open_since = None
            self.quiet = 0
            return Event.RESOLVED
        return None
