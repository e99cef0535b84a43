"""A trailing window that keeps its values sorted: O(log n) rank queries, pure Python.

Pure Python on purpose: per-point numpy calls cost about a microsecond each,
which is the whole streaming budget of a detector (see bench/anomaly.py).
Only the insertion-order ring is pickled; the sorted copy is rebuilt on load.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, insort
from collections import deque
from typing import Any


class SortedWindow:
    """The last ``size`` values, in arrival order and sorted."""

    __slots__ = ("order", "size", "sorted")

    def __init__(self, size: int) -> None:
        self.size = size
        self.order: deque[float] = deque()
        self.sorted: list[float] = []

    def __len__(self) -> int:
        return len(self.order)

    def push(self, value: float) -> None:
        if len(self.order) >= self.size:
            old = self.order.popleft()
            del self.sorted[bisect_left(self.sorted, old)]
        self.order.append(value)
        insort(self.sorted, value)

    def quantile(self, q: float) -> float:
        """Nearest-rank quantile (window must not be empty)."""
        s = self.sorted
        return s[int(q * (len(s) - 1) + 0.5)]

    def __getstate__(self) -> dict[str, Any]:
        return {"size": self.size, "order": array("d", self.order)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.size = state["size"]
        self.order = deque(state["order"])
        self.sorted = sorted(self.order)
