"""Alertmanager webhook payload (version 4) models; unknown fields are ignored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from aiopsd.store import IncomingAlert


def parse_rfc3339(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class WebhookAlert(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str  # noqa: N815 - Alertmanager's field names
    endsAt: str | None = None  # noqa: N815
    generatorURL: str | None = None  # noqa: N815
    fingerprint: str = Field(min_length=1, max_length=128)

    @field_validator("startsAt", "endsAt")
    @classmethod
    def _rfc3339(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        try:
            parse_rfc3339(value)
        except ValueError:
            raise ValueError(f"{info.field_name} is not an RFC 3339 time: {value!r}") from None
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
    groupKey: str = ""  # noqa: N815
    truncatedAlerts: int = 0  # noqa: N815
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    commonLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    commonAnnotations: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    externalURL: str = ""  # noqa: N815
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
