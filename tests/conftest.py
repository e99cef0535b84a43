"""Session-wide fixtures: one real ``mlflow server`` for every test that needs it (startup is slow)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aiopsd.demo.mlflow_server import MlflowServer, running_mlflow


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with running_mlflow(tmp_path_factory.mktemp("mlflow")) as server:
        yield server
