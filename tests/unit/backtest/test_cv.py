"""The generated corpus is deterministic and labelled; the CV protocol never scores a group with its own pick."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aiopsd.backtest.corpus import ANOMALIES, FAMILIES, generate
from aiopsd.backtest.cv import Item, Run, load_nab, select
from aiopsd.backtest.nab import label_file

SLICE = Path(__file__).resolve().parents[2] / "data" / "nab-slice"


def test_corpus_is_deterministic_labelled_and_has_the_traits() -> None:
    a, b = generate(seed=3, per_family=4), generate(seed=3, per_family=4)
    assert len(a) == 4 * len(FAMILIES)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.values, y.values)
        assert x.windows == y.windows
    assert not np.array_equal(generate(seed=4, per_family=1)[0].values, a[0].values)
    kinds = {k for s in generate(seed=0, per_family=12) for k in s.anomalies}
    assert kinds == set(ANOMALIES)
    assert any(np.isnan(s.values).any() for s in a), "missed scrapes"
    cpu = [s for s in a if s.family == "cpu"]
    assert all(np.nanmax(s.values) <= 100 for s in cpu)
    for s in a:
        assert len(s.windows) == len(s.anomalies)
        assert s.labels().n_windows == len(s.windows)


def _item(group: str, name: str, hit_at: int) -> Item:
    t = np.arange(1000, dtype=np.float64)
    return Item("nab", group, name, t, np.zeros(1000), label_file(name, t, [(float(hit_at), float(hit_at + 50))]))


def test_out_of_fold_uses_the_setting_chosen_without_the_group() -> None:
    # Setting "a" finds the windows of groups g1 and g2, setting "b" only the one of g3.
    items = [_item("g1", "x", 500), _item("g2", "y", 600), _item("g3", "z", 700)]

    def scores(hits: list[int]) -> dict[str, np.ndarray]:
        out = {}
        for item, at in zip(items, hits, strict=True):
            s = np.zeros(1000)
            if at >= 0:
                s[at] = 1.0
            out[item.name] = s
        return out

    a = Run("d", {"s": "a"}, scores([500, 600, -1]), 3000, 1.0)
    b = Run("d", {"s": "b"}, scores([-1, -1, 700]), 3000, 1.0)
    sel = select([a, b], items)
    assert sel.chosen is a
    assert sel.picks == {"nab:g1": {"s": "a"}, "nab:g2": {"s": "a"}, "nab:g3": {"s": "a"}}
    assert (sel.out_of_fold.scores["z"] == a.scores["z"]).all()  # g3 never sees its own best setting


def test_nab_layout_loads_with_groups() -> None:
    items = load_nab(SLICE)
    assert items and {i.group for i in items} <= {"artificialWithAnomaly", "realKnownCause"}
