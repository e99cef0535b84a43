"""Shared fixtures: a fresh SQLite state store, a daemon runtime and a scripted source per test (each
closed after use), one real ``mlflow server`` per session; and each test's folder marker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aiopsd.daemon.runtime import Runtime
from aiopsd.demo.mlflow_server import MlflowServer, running_mlflow
from aiopsd.store import StateStore
from aiopsd.testing import ScriptedSource
from tests.support import make_runtime

TESTS = Path(__file__).resolve().parent
# The top-level test folders; each test carries its folder's marker (registered in pyproject.toml).
FOLDER_MARKERS = frozenset({"unit", "contract", "integration", "e2e", "service", "security"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = item.path.resolve().relative_to(TESTS).parts
        if len(parts) > 1 and parts[0] in FOLDER_MARKERS:
            item.add_marker(parts[0])
        if "mlflow_server" in getattr(item, "fixturenames", ()) or "mlflow" in item.nodeid:
            # Under pytest-xdist (make test: -n 2 --dist loadgroup) the tests of the one session
            # MLflow server share a worker, so it starts once.
            item.add_marker(pytest.mark.xdist_group("mlflow"))


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
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    """A daemon's Runtime under tmp_path (rules from ``tmp_path/rules``), without its threads; store closed after."""
    rt: Runtime = make_runtime(tmp_path)
    yield rt
    rt.store.close()


@pytest.fixture
def scripted_source() -> ScriptedSource:
    """A source whose polls the test scripts (``scripted_source.then(finding, lag=...)``)."""
    return ScriptedSource(name="scripted")
