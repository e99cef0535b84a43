"""sources/alertmanager.py: Alertmanager's camelCase names are aliases; an alert maps to its Finding."""

from __future__ import annotations

from datetime import UTC, datetime

from aiopsd.models import FindingKind, SourceKind
from aiopsd.sources.alertmanager import WebhookPayload, webhook_openapi_schema

PAYLOAD = {
    "version": "4",
    "status": "firing",
    "groupKey": '{}:{alertname="A"}',
    "truncatedAlerts": 0,
    "receiver": "aiopsd",
    "externalURL": "http://am",
    "groupLabels": {"alertname": "A"},
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "A", "instance": "web-1"},
            "annotations": {"summary": "A is down"},
            "startsAt": "2026-01-01T00:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prom/graph",
            "fingerprint": "fp",
        }
    ],
}


def test_alertmanager_field_names_are_read_and_published_as_alertmanager_spells_them() -> None:
    payload = WebhookPayload.model_validate(PAYLOAD)
    assert payload.group_key == '{}:{alertname="A"}' and payload.external_url == "http://am"
    assert payload.alerts[0].generator_url == "http://prom/graph"
    schema = webhook_openapi_schema()
    assert {"groupKey", "truncatedAlerts", "externalURL", "commonAnnotations"} <= set(schema["properties"])
    assert {"startsAt", "endsAt", "generatorURL"} <= set(schema["properties"]["alerts"]["items"]["properties"])


def test_a_snake_case_field_is_not_alertmanagers_and_is_ignored() -> None:
    payload = WebhookPayload.model_validate({**PAYLOAD, "group_key": "other"})
    assert payload.group_key == '{}:{alertname="A"}'


def test_an_alert_becomes_the_finding_of_its_episode() -> None:
    alert = WebhookPayload.model_validate(PAYLOAD).alerts[0].to_incoming()
    assert alert.ends_at_epoch is None, "the zero endsAt of a firing alert is no end"
    f = alert.finding("fid", received_at=1_767_225_660.0, episode=2)
    assert (f.id, f.kind, f.source, f.summary) == ("fid", FindingKind.ALERT, SourceKind.ALERTMANAGER, "A is down")
    assert f.starts_at == datetime(2026, 1, 1, tzinfo=UTC) and f.sightings == (1_767_225_660.0,)
    assert f.details == {
        "fingerprint": "fp",
        "annotations": {"summary": "A is down"},
        "generator_url": "http://prom/graph",
        "episode": 2,
    }
