"""The compact windows keep exactly the last ``size`` values, in order and sorted."""

from __future__ import annotations

from array import array

from hypothesis import given
from hypothesis import strategies as st

from aiopsd.detectors.anomaly._window import SortedWindow


@given(st.lists(st.floats(-1e6, 1e6), max_size=80), st.integers(1, 20), st.sampled_from(["d", "f"]))
def test_sorted_window_holds_the_last_values_sorted(xs: list[float], size: int, typecode: str) -> None:
    w = SortedWindow(size, typecode)  # type: ignore[arg-type]
    for x in xs:
        w.push(x)
    stored = array(typecode, xs[-size:]).tolist() if xs else []  # as stored: float32 rounds with "f"
    assert w.order.tolist() == stored
    assert w.sorted.tolist() == sorted(stored)
    assert len(w) == len(stored)
