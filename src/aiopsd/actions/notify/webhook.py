"""A generic JSON webhook: one POST per notification, the finding as structured data."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from aiopsd.actions.notify.base import ChannelConfig, Delivery, Notification, post_json, read_secret, with_retries


def body(note: Notification) -> dict[str, Any]:
    """The JSON a receiver gets (versioned, so receivers can rely on it)."""
    return {
        "version": "1",
        "source": "aiopsd",
        "event": note.event,
        "rule": note.rule,
        "title": note.title,
        "message": note.message,
        "severity": note.severity,
        "dedup_key": note.dedup_key,
        "run_id": note.run_id,
        "finding": note.finding,
    }


class WebhookChannel(ChannelConfig):
    kind: Literal["webhook"] = "webhook"
    url: str = Field(pattern=r"^https?://")
    # Sent as "Authorization: Bearer <token>" when set.
    bearer_token_file: Path | None = None
    # Non-secret extra headers (a secret header belongs in bearer_token_file).
    headers: dict[str, str] = Field(default_factory=dict)

    secret_fields = ("bearer_token",)

    def send(self, note: Notification, cancel: threading.Event, deadline: float | None = None) -> Delivery:
        def once(timeout: float) -> str:
            headers = dict(self.headers)
            if self.bearer_token_file is not None:
                headers["Authorization"] = f"Bearer {read_secret(self.bearer_token_file, 'bearer token')}"
            return post_json(self.url, body(note), timeout=timeout, headers=headers)

        return with_retries(self, once, cancel, deadline)

    def describe(self) -> str:
        return f"webhook {self.url}"
