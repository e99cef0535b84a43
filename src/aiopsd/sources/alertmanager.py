"""Alertmanager webhook payload (version 4) models, and an alert -> its :class:`IncomingAlert` -> Finding.

Unknown fields are ignored; Alertmanager's camelCase field names are the models' aliases.

Every field is checked against what the store can hold before it is accepted, so a
field that cannot be stored is a 422 naming it (never retried), not a failed group
commit answering 503 to every request in the batch: no NUL character and no lone
surrogate (PostgreSQL and UTF-8 refuse both), ``alertname`` and ``receiver`` at most 256
characters, times at most 64 and convertible to UTC (a year that overflows is refused).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from aiopsd.models import Finding, FindingKind, Frozen, SourceKind


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


def _alertmanager_name(field: str) -> str:
    """Alertmanager's name of a field: camelCase, with ``URL`` in capitals (``generatorURL``)."""
    camel = to_camel(field)
    return camel[:-3] + "URL" if camel.endswith("Url") else camel


class _Payload(Frozen):
    model_config = ConfigDict(extra="ignore", alias_generator=_alertmanager_name)


@dataclass(frozen=True)
class IncomingAlert:
    """One alert of an Alertmanager webhook, as the store keeps it (the store's ``AlertDelivery``)."""

    fingerprint: str
    status: str
    starts_at: str
    ends_at: str | None
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    generator_url: str | None
    starts_at_epoch: float
    # endsAt as epoch seconds when it is a real time after startsAt (Alertmanager sends
    # 0001-01-01 on firing alerts it has not timed out), else None.
    ends_at_epoch: float | None = None

    def finding(self, finding_id: str, received_at: float, episode: int) -> Finding:
        """The finding of this alert's firing episode ``episode`` (its id chosen by the store)."""
        summary = (
            self.annotations.get("summary")
            or self.annotations.get("description")
            or self.labels.get("alertname", "alert")
        )
        return Finding(
            id=finding_id,
            kind=FindingKind.ALERT,
            source=SourceKind.ALERTMANAGER,
            labels=dict(self.labels),
            score=1.0,
            starts_at=datetime.fromtimestamp(self.starts_at_epoch, UTC),
            last_seen=datetime.fromtimestamp(received_at, UTC),
            summary=str(summary),
            details={
                "fingerprint": self.fingerprint,
                "annotations": dict(self.annotations),
                "generator_url": self.generator_url,
                "episode": episode,
            },
            sightings=(received_at,),
        )


class WebhookAlert(_Payload):
    status: Literal["firing", "resolved"]
    labels: dict[Text, Text] = Field(min_length=1)
    annotations: dict[Text, Text] = Field(default_factory=dict)
    starts_at: Time
    ends_at: Time | None = None
    generator_url: Text | None = None
    fingerprint: Text = Field(min_length=1, max_length=128)

    @field_validator("labels")
    @classmethod
    def _alertname(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value.get("alertname", "")) > 256:
            raise ValueError("labels.alertname is longer than 256 characters")
        return value

    def to_incoming(self) -> IncomingAlert:
        starts = parse_rfc3339(self.starts_at).timestamp()
        ends = None if self.ends_at is None else parse_rfc3339(self.ends_at).timestamp()
        return IncomingAlert(
            fingerprint=self.fingerprint,
            status=self.status,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            labels=self.labels,
            annotations=self.annotations,
            generator_url=self.generator_url,
            starts_at_epoch=starts,
            # Alertmanager sends the zero time (0001-01-01) on a firing alert: no end known.
            ends_at_epoch=ends if ends is not None and ends > starts else None,
        )


class WebhookPayload(_Payload):
    """The body Alertmanager POSTs to a webhook receiver."""

    version: Literal["4"]
    group_key: Text = ""
    truncated_alerts: int = 0
    status: Literal["firing", "resolved"]
    receiver: Text = Field(default="", max_length=256)
    group_labels: dict[Text, Text] = Field(default_factory=dict)
    common_labels: dict[Text, Text] = Field(default_factory=dict)
    common_annotations: dict[Text, Text] = Field(default_factory=dict)
    external_url: Text = ""
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
