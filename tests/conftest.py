"""Shared fixtures: a fresh SQLite state store per test, a scripted source, and one real ``mlflow server``
per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aiopsd.demo.mlflow_server import MlflowServer, running_mlflow
from aiopsd.store import StateStore
from aiopsd.testing import ScriptedSource


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with running_mlflow(tmp_path_factory.mktemp("mlflow")) as server:
        yield server


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    """A fresh SQLite state store under the test's tmp_path, closed afterwards."""
    s = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()


@pytest.fixture
def scripted_source() -> ScriptedSource:
    """A source whose polls the test scripts (``scripted_source.then(finding, lag=...)``)."""
    return ScriptedSource(name="scripted")
