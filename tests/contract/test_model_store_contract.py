"""One contract for every model store backend: the directory and a REAL MLflow server (``mlflow_server``).

Each backend gets the same calls and must give the same answers a user relies on:
numbered versions, one served version, rejected versions never served, rollback
walking back along what was served, lineage kept, and a cut-off promotion repaired.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

from aiopsd.demo.mlflow_server import MlflowServer
from aiopsd.model_store import ModelStore, RegistryError, StoreSpec, open_store

_names = itertools.count(1)
pytestmark = pytest.mark.timeout(900)  # the first MLflow case waits for the session's mlflow server
Factory = Callable[[], ModelStore]


@pytest.fixture(params=["directory", "mlflow"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    if request.param == "directory":
        return lambda: open_store(StoreSpec(kind="directory", path=tmp_path / "models"))
    server: MlflowServer = request.getfixturevalue("mlflow_server")
    name = f"contract-{request.node.name.split('[')[0][-30:]}-{next(_names)}"
    return lambda: open_store(StoreSpec(kind="mlflow", tracking_uri=server.url, name=name))


def tree(depth: int) -> DecisionTreeClassifier:
    x, y = load_iris(return_X_y=True)
    return DecisionTreeClassifier(max_depth=depth, random_state=0).fit(x, y)


def served(store: ModelStore) -> list[int]:
    return [v.number for v in store.list_versions() if v.current]


def test_an_empty_store_serves_nothing_and_says_so(make_store: Factory) -> None:
    store = make_store()
    assert store.list_versions() == [] and store.current() is None
    with pytest.raises(RegistryError, match="promote"):
        store.load()
    with pytest.raises(RegistryError, match="no version 1"):
        store.get(1)
    with pytest.raises(RegistryError, match="no earlier served version"):
        store.rollback()


def test_register_numbers_versions_and_keeps_metrics_and_lineage(make_store: Factory) -> None:
    store = make_store()
    lineage = {"rows": 150, "table": {"sha256": "ab" * 32}, "parent": None}
    first = store.register(
        tree(1), metrics={"metric": "accuracy", "holdout": {"candidate": 0.5}}, meta={"job": "test", "lineage": lineage}
    )
    second = store.register(tree(2), metrics={"metric": "accuracy"})
    assert (first.number, second.number) == (1, 2)
    assert first.status == "candidate" and not first.current and store.current() is None
    got = store.get(1)
    assert got.metrics["holdout"] == {"candidate": 0.5} and got.meta["lineage"] == lineage
    assert [v.number for v in store.list_versions()] == [1, 2]
    x, _ = load_iris(return_X_y=True)
    number, model = store.load(2)
    assert number == 2 and np.array_equal(model.predict(x), tree(2).predict(x))


def test_promote_serves_exactly_one_version_and_refuses_rejected(make_store: Factory) -> None:
    store = make_store()
    for depth in (1, 2):
        store.register(tree(depth), metrics={})
    bad = store.register(tree(3), metrics={"improvement": -0.2}, status="rejected")
    store.promote(1)
    assert store.promote(2).current and store.current() == 2 and served(store) == [2]
    with pytest.raises(RegistryError, match="rejected by the retrain gate"):
        store.promote(bad.number)
    assert store.current() == 2 and store.get(bad.number).status == "rejected"
    assert store.get(1).status == "promoted"


def test_rollback_walks_back_along_what_was_served(make_store: Factory) -> None:
    store = make_store()
    for depth in (1, 2, 3):
        store.promote(store.register(tree(depth), metrics={}).number)
    assert store.rollback().number == 2 and served(store) == [2]
    assert store.rollback().number == 1
    with pytest.raises(RegistryError, match="no earlier served version"):
        store.rollback()
    assert store.current() == 1
    assert [(h["version"], h["kind"]) for h in store.history()] == [
        (1, "promote"),
        (2, "promote"),
        (3, "promote"),
        (2, "rollback"),
        (1, "rollback"),
    ]
    assert store.rollback(to=3).number == 3 and store.current() == 3


def test_a_switch_whose_history_line_was_lost_is_repaired(make_store: Factory) -> None:
    """The pointer moved but the audit line never got written (the crash the kill test makes for real)."""
    store = make_store()
    for depth in (1, 2, 3):
        store.register(tree(depth), metrics={})
    store.promote(1)
    store.promote(2)
    store._switch(3)  # type: ignore[attr-defined]
    assert store.current() == 3 and served(store) == [3]
    assert store.rollback().number == 2  # not 1: the served chain includes 3


def test_mark_keeps_a_shadow_record_and_never_serves_or_unserves(make_store: Factory) -> None:
    store = make_store()
    champion = store.register(tree(1), metrics={}).number
    store.promote(champion)
    challenger = store.register(tree(2), metrics={}).number
    record = {"state": "shadow", "champion": champion, "comparison": {"rows": 0}}
    v = store.mark(challenger, status="shadow", lifecycle=record)
    assert v.status == "shadow" and v.meta["lifecycle"] == record and not v.current
    assert store.current() == champion and served(store) == [champion]
    assert [x.status for x in store.list_versions()] == ["promoted", "shadow"]
    store.mark(challenger, lifecycle={**record, "comparison": {"rows": 500}})  # status kept
    assert store.get(challenger).status == "shadow"
    assert store.get(challenger).meta["lifecycle"]["comparison"] == {"rows": 500}
    with pytest.raises(RegistryError, match="use promote"):
        store.mark(challenger, status="promoted")
    with pytest.raises(RegistryError, match="has been served"):
        store.mark(champion, status="rejected")
    store.mark(challenger, status="rejected", lifecycle={**record, "state": "rejected"})
    with pytest.raises(RegistryError, match="rejected"):
        store.promote(challenger)
    store.mark(champion, lifecycle={"state": "champion"})  # a served version's record may change
    assert store.current() == champion and store.get(champion).meta["lifecycle"] == {"state": "champion"}
