"""Config sections of the daemon: webhook and approvals auth, actions, alerts, AWX, silences, HA."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import (
    Field,
    model_validator,
)

from aiopsd.durations import Duration, PositiveDuration
from aiopsd.engine.rules import RateBudget
from aiopsd.models import Frozen

if TYPE_CHECKING:
    pass


class WebhookAuth(Frozen):
    bearer_token: str | None = None
    bearer_token_file: Path | None = None
    basic_username: str | None = None
    basic_password_file: Path | None = None


class ApprovalsConfig(Frozen):
    """Who may approve runs held by ``require_approval`` over HTTP: its own credential.

    Unset (the default), ``POST /api/v1/actions/{id}/approve`` answers 403 and approvals go
    through ``aiopsd approve ID`` on the host. The webhook's credential never approves:
    whoever can send alerts must not also be able to release the actions they cause.
    """

    auth: WebhookAuth = WebhookAuth()


class WebhookConfig(Frozen):
    auth: WebhookAuth = WebhookAuth()
    max_body_bytes: int = Field(default=1_048_576, ge=1024)


class ActionsConfig(Frozen):
    concurrency: int = Field(default=4, ge=1)
    dry_run: bool = False
    # Global rate budget: at most ``count`` actions of all rules within ``window``.
    max_per_window: RateBudget | None = None
    # How long SIGTERM waits for running actions before cancelling them.
    shutdown_grace: Duration = 30.0


class AlertsConfig(Frozen):
    """Alertmanager alerts (webhook findings)."""

    # A firing alert finding not delivered again for this long resolves as "expired" (a lost or
    # never-sent resolve must not keep it actionable). Keep it above Alertmanager's repeat_interval
    # (default 4h), which is how often a still-firing alert is re-sent.
    max_age: PositiveDuration = 43200.0


class AWXConfig(Frozen):
    """AWX / Ansible Automation Platform controller for ``job_template`` actions (token auth)."""

    url: str | None = None
    token_file: Path | None = None
    verify_tls: bool = True
    # How often a launched job's status is read.
    poll_interval: PositiveDuration = 5.0


class SilencesConfig(Frozen):
    """Read Alertmanager's silences (alertmanager_url, API v2): a silenced finding is not remediated."""

    enabled: bool = False
    # Silences are read at most this often; a failed read marks them unknown (no actions) until one succeeds.
    ttl: Duration = Field(default=15.0, gt=0)
    timeout: Duration = Field(default=5.0, gt=0)


# In a watch query, replaced by the regex of the shards a replica holds (see ShardingConfig.label).
SHARDS_PLACEHOLDER = "$__shards"


class ShardingConfig(Frozen):
    """Sharded detection across replicas on PostgreSQL (docs/operations.md "Sharding across replicas").

    Off by default: the leader polls every watch. On, every replica polls every watch and scores
    the series of the shards it holds a lease on; ignored with SQLite (one node scores everything).
    """

    enabled: bool = False
    # Series are hashed into this many shards; every replica must use the same number.
    shards: int = Field(default=64, ge=1, le=4096)
    # A replica that stops renewing loses its shards after this long; the others then take them over.
    lease_ttl: PositiveDuration = 30.0
    # A label Prometheus sets to each series' shard (hashmod relabeling, modulus = shards): then a
    # watch query containing "$__shards" selects only this replica's shards on the Prometheus side.
    label: str | None = Field(default=None, pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")

    @model_validator(mode="after")
    def _ttl(self) -> ShardingConfig:
        if self.lease_ttl < 1:
            raise ValueError("lease_ttl must be at least 1s")
        return self


class HAConfig(Frozen):
    """Several replicas on one PostgreSQL database (ignored with SQLite, which is one node)."""

    # A leader that stops renewing loses the lease after this long; a follower then takes over.
    lease_ttl: PositiveDuration = 15.0

    @model_validator(mode="after")
    def _ttl(self) -> HAConfig:
        if self.lease_ttl < 1:
            raise ValueError("lease_ttl must be at least 1s")
        return self
