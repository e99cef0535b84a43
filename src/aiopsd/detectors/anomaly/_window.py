"""Compact per-series windows: packed doubles (or floats), O(log n) rank queries, no numpy per point.

Pure Python on purpose: per-point numpy calls cost about a microsecond each,
which is the whole streaming budget of a detector (see bench/anomaly.py).
State lives in :class:`array.array` (8 bytes a value, 4 with typecode ``"f"``)
rather than lists of Python floats (about 32 bytes a value), which is what
keeps a series' resident memory within budget (docs/anomaly.md).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, insort
from collections.abc import Iterator
from typing import Any, Literal

Typecode = Literal["d", "f"]


class Ring:
    """The last ``size`` values in arrival order, in one preallocated array."""

    __slots__ = ("data", "head", "n", "size")

    def __init__(self, size: int, typecode: Typecode = "d") -> None:
        self.size = size
        self.data: array[float] = array(typecode, [0.0]) * size
        self.head = 0  # index of the oldest value once full
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def push(self, value: float) -> float | None:
        """Append ``value``; return the value it evicted, if the ring was full."""
        old = None
        if self.n == self.size:
            old = self.data[self.head]
            self.data[self.head] = value
            self.head = (self.head + 1) % self.size
        else:
            self.data[(self.head + self.n) % self.size] = value
            self.n += 1
        return old

    def ago(self, k: int) -> float:
        """The value ``k`` pushes ago (1: the newest)."""
        return self.data[(self.head + self.n - k) % self.size]

    def __iter__(self) -> Iterator[float]:
        for i in range(self.n):
            yield self.data[(self.head + i) % self.size]

    def tolist(self) -> list[float]:
        if self.n < self.size:
            return self.data[: self.n].tolist()
        return self.data[self.head :].tolist() + self.data[: self.head].tolist()

    def __getstate__(self) -> dict[str, Any]:
        return {"size": self.size, "typecode": self.data.typecode, "values": array(self.data.typecode, self.tolist())}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["size"], state["typecode"])  # type: ignore[misc]
        for v in state["values"]:
            self.push(v)


class SortedWindow:
    """The last ``size`` values, in arrival order (:class:`Ring`) and sorted."""

    __slots__ = ("order", "size", "sorted")

    def __init__(self, size: int, typecode: Typecode = "d") -> None:
        self.size = size
        self.order = Ring(size, typecode)
        self.sorted: array[float] = array(typecode)

    def __len__(self) -> int:
        return self.order.n

    def push(self, value: float) -> None:
        # Ring.push and Ring.ago written out: this runs once a point in every detector.
        s, ring = self.sorted, self.order
        data, n, size = ring.data, ring.n, ring.size
        if n == size:
            head = ring.head
            del s[bisect_left(s, data[head])]
            data[head] = value
            ring.head = head + 1 if head + 1 < size else 0
            insort(s, data[head])  # as stored (rounded to float32 with typecode "f")
        else:
            i = (ring.head + n) % size
            data[i] = value
            ring.n = n + 1
            insort(s, data[i])

    def quantile(self, q: float) -> float:
        """Nearest-rank quantile (window must not be empty)."""
        s = self.sorted
        return s[int(q * (len(s) - 1) + 0.5)]

    def __getstate__(self) -> dict[str, Any]:
        return {"size": self.size, "order": self.order}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.size = state["size"]
        self.order = state["order"]
        self.sorted = array(self.order.data.typecode, sorted(self.order.tolist()))
