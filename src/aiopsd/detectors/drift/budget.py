"""How a window's false-alarm budget is spent: weighted Bonferroni, per column then per test.

Holm over every test of every column treats a missing-rate test (which has
p < 1e-15 the moment 20 % of a column goes missing) like a rank-sum test that
needs every bit of the budget to see a 0.5 SD shift in 100 rows. Here the
budget ``alpha`` is split in two levels:

1. equally between the columns (and the performance test, when labels exist),
   since any column may be the one that moves;
2. inside a column, between its tests by the weights below, renormalised over
   the tests that apply (a continuous column has no point masses; its share
   goes to the others).

Test ``i`` rejects when ``p_i <= alpha * w_i`` with ``sum(w_i) = 1``, so the
chance that a no-drift window rejects anything is at most ``alpha`` whatever
the dependence between the tests. The reported adjusted p-value is
``min(1, p_i / w_i)``, compared with ``alpha`` as before.

The weights were chosen by ``bench/drift_cv.py``: every weight vector on a 0.1
grid scored offline on stored p-values, fitted on the tuning tables of
``bench/drift_tables.py`` and, as a check, leave-one-table-out over the whole
bed (13 of 14 folds chose these; docs/ml-monitoring.md has the table).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

NUMERIC_WEIGHTS: Mapping[str, float] = {"rank-sum": 0.6, "point-mass": 0.2, "ks": 0.1, "missing-rate": 0.1}
CATEGORICAL_WEIGHTS: Mapping[str, float] = {"cells": 0.6, "chi2": 0.3, "missing-rate": 0.1}


def test_weights(kind: str, tests: Iterable[str]) -> dict[str, float]:
    """Weights of one column's applicable tests, summing to 1 (read from the module's tables)."""
    table = NUMERIC_WEIGHTS if kind == "numeric" else CATEGORICAL_WEIGHTS
    raw = {t: table.get(t, 0.0) for t in tests}
    total = sum(raw.values())
    if total <= 0:
        return {t: 1.0 / len(raw) for t in raw} if raw else {}
    return {t: w / total for t, w in raw.items()}


test_weights.__test__ = False  # type: ignore[attr-defined]
