"""Alertmanager webhook payload (version 4) models; unknown fields are ignored.

Every field is checked against what the store can hold before it is accepted, so a
field that cannot be stored is a 422 naming it (never retried), not a failed group
commit answering 503 to every request in the batch: no NUL character and no lone
surrogate (PostgreSQL and UTF-8 refuse both), ``alertname`` and ``receiver`` at most 256
characters, times at most 64 and convertible to UTC (a year that overflows is refused).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from aiopsd.store import IncomingAlert


def parse_rfc3339(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("contains a NUL character, which the state store cannot hold")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid Unicode (a lone surrogate), which the state store cannot hold") from None
    return value


def _time(value: str) -> str:
    try:
        parse_rfc3339(value).astimezone(UTC)
    except ValueError:
        raise ValueError(f"is not an RFC 3339 time: {value[:64]!r}") from None
    except OverflowError:
        raise ValueError(f"{value[:64]!r} is out of range once converted to UTC") from None
    return value


# A string the store can hold; every string of the payload is one.
Text = Annotated[str, AfterValidator(_storable)]
Time = Annotated[str, Field(max_length=64), AfterValidator(_time)]


class WebhookAlert(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    status: Literal["firing", "resolved"]
    labels: dict[Text, Text] = Field(min_length=1)
    annotations: dict[Text, Text] = Field(default_factory=dict)
    startsAt: Time  # noqa: N815 - Alertmanager's field names
    endsAt: Time | None = None  # noqa: N815
    generatorURL: Text | None = None  # noqa: N815
    fingerprint: Text = Field(min_length=1, max_length=128)

    @field_validator("labels")
    @classmethod
    def _alertname(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value.get("alertname", "")) > 256:
            raise ValueError("labels.alertname is longer than 256 characters")
        return value

    def to_incoming(self) -> IncomingAlert:
        starts = parse_rfc3339(self.startsAt).timestamp()
        ends = None if self.endsAt is None else parse_rfc3339(self.endsAt).timestamp()
        return IncomingAlert(fingerprint=self.fingerprint, status=self.status, starts_at=self.startsAt,
                             ends_at=self.endsAt, labels=self.labels, annotations=self.annotations,
                             generator_url=self.generatorURL, starts_at_epoch=starts,
                             # Alertmanager sends the zero time (0001-01-01) on a firing alert: no end known.
                             ends_at_epoch=ends if ends is not None and ends > starts else None)


class WebhookPayload(BaseModel):
    """The body Alertmanager POSTs to a webhook receiver."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    version: Literal["4"]
    groupKey: Text = ""  # noqa: N815
    truncatedAlerts: int = 0  # noqa: N815
    status: Literal["firing", "resolved"]
    receiver: Text = Field(default="", max_length=256)
    groupLabels: dict[Text, Text] = Field(default_factory=dict)  # noqa: N815
    commonLabels: dict[Text, Text] = Field(default_factory=dict)  # noqa: N815
    commonAnnotations: dict[Text, Text] = Field(default_factory=dict)  # noqa: N815
    externalURL: Text = ""  # noqa: N815
    alerts: list[WebhookAlert] = Field(max_length=10_000)


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline_refs(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline_refs(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


def webhook_openapi_schema() -> dict[str, Any]:
    """The payload's JSON schema with its definitions inlined, for the OpenAPI request body."""
    schema = WebhookPayload.model_json_schema()
    return dict(_inline_refs(schema, schema.get("$defs", {})))
