"""The schema (SQLAlchemy Core). Times are epoch seconds (float) in every dialect."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fingerprint", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("starts_at", String(64), nullable=False),
    Column("ends_at", String(64), nullable=True),
    Column("alertname", String(256), nullable=True),
    Column("labels", JSON, nullable=False),
    Column("annotations", JSON, nullable=False),
    Column("generator_url", Text, nullable=True),
    Column("receiver", String(256), nullable=True),
    Column("group_key", Text, nullable=True),
    Column("received_at", Float, nullable=False),
    Column("finding_id", String(64), nullable=True),
    # One row per distinct delivery of one firing episode: a redelivery is a no-op, a re-fire after a
    # resolve (same startsAt, new episode, new finding_id) is not.
    UniqueConstraint("fingerprint", "status", "starts_at", "finding_id", name="uq_alert_delivery"),
)

# The current firing episode of each alert fingerprint. Episode n's finding id is
# stable_id("alert", fingerprint, "episode", n); while that finding fires, every delivery of the
# fingerprint (whatever its startsAt: HA pairs differ) belongs to it.
alert_episodes = Table(
    "alert_episodes",
    metadata,
    Column("fingerprint", String(128), primary_key=True),
    Column("episode", Integer, nullable=False),
    Column("finding_id", String(64), nullable=True),
    # The latest firing delivery's endsAt (epoch), when the sender gave one: resolved unless resent.
    Column("ends_at", Float, nullable=True),
)

findings = Table(
    "findings",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("source", String(256), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("score", Float, nullable=False),
    Column("status", String(16), nullable=False),
    Column("starts_at", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("resolved_at", Float, nullable=True),
    Column("summary", Text, nullable=False, default=""),
    Column("details", JSON, nullable=False),
    Column("sightings", JSON, nullable=False),
    Column("occurrences", Integer, nullable=False, default=1),
    # Why a resolved finding resolved: "recovered", "no_data" or "expired" (only "recovered" is recovery).
    Column("resolution", String(32), nullable=True),
    Index("ix_findings_status", "status", "kind"),
    Index("ix_findings_last_seen", "last_seen"),
)

decisions = Table(
    "decisions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("rule", String(256), nullable=False),
    Column("finding_id", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("code", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Column("action_kind", String(32), nullable=True),
    Column("action", JSON, nullable=False),
    Column("targets", JSON, nullable=False),
    Column("dry_run", Boolean, nullable=False, default=False),
    Column("require_approval", Boolean, nullable=False, default=False),
    Column("decided_at", Float, nullable=False),
    Index("ix_decisions_rule", "rule", "outcome", "decided_at"),
    Index("ix_decisions_finding", "finding_id"),
)

action_runs = Table(
    "action_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("decision_id", String(64), nullable=False, unique=True),
    Column("rule", String(256), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("targets", JSON, nullable=False),
    Column("status", String(24), nullable=False),
    Column("attempt", Integer, nullable=False, default=1),
    Column("dry_run", Boolean, nullable=False, default=False),
    Column("action", JSON, nullable=False),
    Column("timeout", Float, nullable=False),
    Column("max_attempts", Integer, nullable=False, default=1),
    Column("retry_backoff", Float, nullable=False, default=10.0),
    Column("created_at", Float, nullable=False),
    Column("not_before", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("rc", Integer, nullable=True),
    Column("output", Text, nullable=False, default=""),
    Column("error", Text, nullable=False, default=""),
    Column("artifact_dir", Text, nullable=True),
    Column("owner", String(128), nullable=True),
    # The decision's rendered verify plan (rules with ``verify:``): a success opens a verification.
    Column("verify", JSON, nullable=True),
    Index("ix_runs_status", "status", "not_before"),
    Index("ix_runs_rule", "rule", "finished_at"),
)

cursors = Table(
    "cursors",
    metadata,
    Column("name", String(512), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", Float, nullable=False),
)

sources = Table(
    "sources",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("up", Boolean, nullable=False),
    Column("last_ok", Float, nullable=True),
    Column("last_error_at", Float, nullable=True),
    Column("error", Text, nullable=False, default=""),
    Column("lag", Float, nullable=True),
    Column("updated_at", Float, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    # Append-only and hash-chained: hash = sha256(prev_hash + canonical JSON of seq, at, kind, event).
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", Float, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("event", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_anchor = Table(
    "audit_anchor",
    metadata,
    # After a retention prune the chain starts at ``seq``, whose prev_hash must be ``prev_hash``.
    Column("name", String(16), primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("pruned_at", Float, nullable=False),
    Column("pruned_entries", Integer, nullable=False),
)

circuit_resets = Table(
    "circuit_resets",
    metadata,
    # Runs finished before reset_at no longer count towards the rule's circuit breaker.
    Column("rule", String(256), primary_key=True),
    Column("reset_at", Float, nullable=False),
    Column("by", String(256), nullable=False, default=""),
)

# High availability (PostgreSQL): one row per lease (the leader lease is "leader") and one
# heartbeat row per live replica. Times come from the database's clock, not the replicas'.
leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("acquired_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

replicas = Table(
    "replicas",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

# Maintenance windows created at run time (``aiopsd maintenance start``); config windows are not stored.
maintenance_windows = Table(
    "maintenance_windows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("labels", JSON, nullable=False),
    Column("starts_at", Float, nullable=False),
    Column("ends_at", Float, nullable=False),
    Column("comment", Text, nullable=False, default=""),
    Column("created_by", String(256), nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Index("ix_maintenance_ends_at", "ends_at"),
)

# Closed loop (issue 17): the verification of each succeeded run of a rule with ``verify:``, opened in
# the transaction that records the success, so a restart resumes it; ``status`` pending until decided.
verifications = Table(
    "verifications",
    metadata,
    Column("run_id", Integer, primary_key=True, autoincrement=False),
    Column("rule", String(256), nullable=False),
    Column("finding_id", String(64), nullable=False),
    # The check rendered when the decision was taken: {"after", "within", "check"}.
    Column("plan", JSON, nullable=False),
    Column("due_at", Float, nullable=False),
    Column("deadline", Float, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    # The latest check: "holds", "fails" or "missing" (missing data: never a verdict).
    Column("last_check", String(16), nullable=True),
    Column("last_checked_at", Float, nullable=True),
    Column("progress", JSON, nullable=False),
    Column("decided_at", Float, nullable=True),
    Index("ix_verifications_status", "status", "due_at"),
    Index("ix_verifications_rule", "rule", "decided_at"),
    Index("ix_verifications_finding", "finding_id"),
)

# A demoted rule (min_success) regains its autonomy when an operator restores it: outcomes decided
# before restored_at no longer count.
rule_restores = Table(
    "rule_restores",
    metadata,
    Column("rule", String(256), primary_key=True),
    Column("restored_at", Float, nullable=False),
    Column("by", String(256), nullable=False, default=""),
)

# Sharded detection (PostgreSQL, ``sharding.enabled``): one lease row per shard, one membership row
# per live replica (its heartbeat and shard count), the watermark of each (watch, shard), and a
# pruned ledger of what each replica scored (who scored which points of which shard: the evidence
# that no point was scored twice or skipped). Times come from the database's clock.
shard_leases = Table(
    "shard_leases",
    metadata,
    Column("shard", Integer, primary_key=True, autoincrement=False),
    Column("holder", String(128), nullable=False, default=""),
    Column("acquired_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

shard_members = Table(
    "shard_members",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("shards", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

shard_marks = Table(
    "shard_marks",
    metadata,
    Column("source", String(256), primary_key=True),
    Column("shard", Integer, primary_key=True, autoincrement=False),
    Column("watermark", Float, nullable=False),
    Column("holder", String(128), nullable=False),
    Column("updated_at", Float, nullable=False),
)

shard_ledger = Table(
    "shard_ledger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(256), nullable=False),
    Column("shard", Integer, nullable=False),
    Column("holder", String(128), nullable=False),
    Column("since", Float, nullable=False),
    Column("until", Float, nullable=False),
    Column("series", Integer, nullable=False),
    Column("at", Float, nullable=False),
    Index("ix_shard_ledger_at", "at"),
)
