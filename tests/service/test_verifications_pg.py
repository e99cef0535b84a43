"""The closed loop's store on real PostgreSQL: verifications, outcomes as history, demotion, restores."""

from __future__ import annotations

from aiopsd.demo.postgres import Postgres
from aiopsd.store import StateStore
from tests.unit.store.test_verifications import check_verifications_round_trip


def test_verifications_round_trip_on_postgresql(postgres: Postgres) -> None:
    store = StateStore(postgres.url)
    try:
        check_verifications_round_trip(store)
    finally:
        store.close()
