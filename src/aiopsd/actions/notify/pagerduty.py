"""PagerDuty Events API v2: ``trigger`` opens (or updates) an alert, ``resolve`` closes it.

The dedup key comes from the finding (``aiopsd-<finding id>`` by default), so a
re-sent trigger updates the same PagerDuty alert and an ``on_resolved`` notify with
``event: resolve`` closes it. PagerDuty answers 202 to an accepted event, 400 to
an invalid one (not retried), 429 and 5xx when it may be retried.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from aiopsd.actions.notify.base import ChannelConfig, Delivery, Notification, post_json, read_secret, with_retries

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
# Limits of the Events API v2.
MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255


def body(note: Notification, routing_key: str, *, client_url: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": note.event,
        "dedup_key": note.dedup_key[:MAX_DEDUP_KEY],
    }
    if note.event == "trigger":
        labels = note.finding.get("labels") or {}
        source = labels.get("instance") or labels.get("host") or note.finding.get("source") or "aiopsd"
        out["payload"] = {
            "summary": f"{note.title}: {note.message}"[:MAX_SUMMARY],
            "source": str(source),
            "severity": note.severity,
            "timestamp": datetime.now(UTC).isoformat(),
            "component": str(labels.get("service") or labels.get("job") or note.finding.get("source") or ""),
            "class": str(note.finding.get("kind") or ""),
            "custom_details": {"rule": note.rule, "message": note.message, "finding": note.finding},
        }
        out["client"] = "aiopsd"
        if client_url:
            out["client_url"] = client_url
    return out


class PagerDutyChannel(ChannelConfig):
    kind: Literal["pagerduty"] = "pagerduty"
    routing_key_file: Path
    url: str = Field(default=EVENTS_URL, pattern=r"^https?://")
    # A link shown in the PagerDuty alert (e.g. the aiopsd status page).
    client_url: str | None = None

    secret_fields = ("routing_key", "integration_key")

    def send(self, note: Notification, cancel: threading.Event, deadline: float | None = None) -> Delivery:
        def once(timeout: float) -> str:
            key = read_secret(self.routing_key_file, "PagerDuty routing key")
            return post_json(self.url, body(note, key, client_url=self.client_url), timeout=timeout, ok=(200, 201, 202))

        return with_retries(self, once, cancel, deadline)

    def describe(self) -> str:
        return f"pagerduty {self.url}"
