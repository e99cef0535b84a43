"""A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat accept this shape).

The webhook URL carries the credential, so it is read from ``url_file``. Text is
sent with Slack's three control characters escaped (``&``, ``<``, ``>``), so a
label cannot ping ``<!channel>`` or forge a link.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Literal

from aiopsd.actions.notify.base import (
    Attempt,
    ChannelConfig,
    Delivery,
    Notification,
    post_json,
    read_secret,
    with_retries,
)


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def body(note: Notification, channel: str | None = None) -> dict[str, Any]:
    labels = note.finding.get("labels") or {}
    fields = [{"type": "mrkdwn", "text": f"*{escape(str(k))}*: {escape(str(v))}"} for k, v in sorted(labels.items())][
        :10
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{escape(note.title)}*\n{escape(note.message)}"}},
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": escape(f"aiopsd rule {note.rule} · {note.event} · {note.severity}")}
            ],
        }
    )
    out: dict[str, Any] = {"text": escape(f"{note.title}: {note.message}"), "blocks": blocks}
    if channel:
        out["channel"] = channel
    return out


class SlackChannel(ChannelConfig):
    kind: Literal["slack"] = "slack"
    url_file: Path
    # Override the webhook's default channel (where the receiver allows it).
    channel: str | None = None

    secret_fields = ("url", "webhook_url")

    def send(self, note: Notification, cancel: threading.Event, deadline: float | None = None) -> Delivery:
        def once(timeout: float) -> str:
            url = read_secret(self.url_file, "Slack webhook URL")
            if not url.startswith(("https://", "http://")):
                raise Attempt(f"{self.url_file} does not hold an http(s) URL", retry=False)
            return post_json(url, body(note, self.channel), timeout=timeout, ok=(200,))

        return with_retries(self, once, cancel, deadline)

    def describe(self) -> str:
        return f"slack (URL in {self.url_file})"
