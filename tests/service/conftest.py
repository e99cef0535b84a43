from __future__ import annotations

from collections.abc import Iterator

import pytest

from aiopsd.demo.postgres import Postgres, pg_bindir, running_postgres


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    """A fresh PostgreSQL cluster on a free loopback port, stopped afterwards."""
    if pg_bindir() is None:
        pytest.skip("PostgreSQL is not installed (make system-deps installs the Debian package)")
    with running_postgres() as pg:
        yield pg
