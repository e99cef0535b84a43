"""Alembic migrations bring SQLite and PostgreSQL to the schema the code uses, and keep old data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, insert, inspect, select, text

from aiopsd.demo.postgres import Postgres
from aiopsd.store import StateStore, migrate
from aiopsd.store import tables as t
from tests.support import tool_env

SKELETON_TABLES = ("alerts", "findings", "decisions", "action_runs", "cursors", "sources")


def db_cli(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiopsd", "db", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        env=tool_env(),
        check=False,
        timeout=120,
    )


def assert_schema_matches_code(url: str) -> None:
    """Every table, column and index the code declares exists as migrated (catches a missing migration)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), t.metadata)
    finally:
        engine.dispose()
    assert diff == [], f"tables.py and the migrations disagree; add a migration: {diff}"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_db_upgrade_on_an_empty_database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}" if backend == "sqlite" else request.getfixturevalue("postgres").url
    cfg = tmp_path / "aiopsd.yaml"
    cfg.write_text(yaml.safe_dump({"state_url": url}))
    first = db_cli("upgrade", config=cfg)
    assert first.returncode == 0, first.stderr
    assert f"schema at {migrate.head()} (was empty)" in first.stdout
    again = db_cli("upgrade", config=cfg)
    assert f"schema at {migrate.head()} (was {migrate.head()})" in again.stdout
    assert f"current: {migrate.head()}" in db_cli("current", config=cfg).stdout
    assert_schema_matches_code(url)


def test_a_skeleton_database_is_stamped_and_upgraded_keeping_its_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    # The skeleton's schema is revision 0001 without its alembic_version table (today's tables.py has more).
    migrate.upgrade(engine, migrate.FIRST)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
        assert set(inspect(conn).get_table_names()) == set(SKELETON_TABLES)
        conn.execute(insert(t.cursors).values(name="watch:latency", value={"ts": 1}, updated_at=1.0))
    engine.dispose()
    store = StateStore(url)  # what `aiopsd run` does on start
    try:
        assert migrate.current(store.engine) == migrate.head()
        with store.read() as conn:
            assert conn.execute(select(t.cursors.c.value)).scalar_one() == {"ts": 1}
    finally:
        store.close()
    assert_schema_matches_code(url)


def test_replicas_starting_together_migrate_once(postgres: Postgres) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def open_store(_: int) -> str | None:
        store = StateStore(postgres.url)
        try:
            return migrate.current(store.engine)
        finally:
            store.close()

    with ThreadPoolExecutor(3) as pool:
        assert list(pool.map(open_store, range(3))) == [migrate.head()] * 3


def test_a_firing_alert_stored_before_episodes_keeps_its_finding_after_the_upgrade(tmp_path: Path) -> None:
    from aiopsd.models import stable_id
    from aiopsd.sources.alertmanager import WebhookAlert
    from aiopsd.store import AcceptResult

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    migrate.upgrade(engine, "0003")
    old_id = stable_id("alert", "fp", "2026-01-01T00:00:00Z")  # the id before episodes
    with engine.begin() as conn:
        conn.execute(
            insert(t.alerts).values(
                fingerprint="fp",
                status="firing",
                starts_at="2026-01-01T00:00:00Z",
                labels={"alertname": "A"},
                annotations={},
                received_at=1.0,
                finding_id=old_id,
            )
        )
        conn.execute(
            insert(t.findings).values(
                id=old_id,
                kind="alert",
                source="alertmanager",
                labels={"alertname": "A"},
                score=1.0,
                status="firing",
                starts_at=0.0,
                last_seen=1.0,
                details={},
                sightings=[1.0],
            )
        )
    engine.dispose()
    store = StateStore(url)
    try:

        def deliver(starts: str) -> AcceptResult:
            a = WebhookAlert.model_validate(
                {"status": "firing", "labels": {"alertname": "A"}, "startsAt": starts, "fingerprint": "fp"}
            ).to_incoming()
            return store.accept_alerts([a], received_at=2.0, receiver="x", group_key="g")

        assert deliver("2026-01-01T00:00:00Z").duplicates == 1
        assert deliver("2026-01-01T00:00:05Z").opened == 0
        assert [f.id for f in store.list_findings()] == [old_id]
    finally:
        store.close()
