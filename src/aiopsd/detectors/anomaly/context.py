"""Surprise against learned contexts of quantised values (the idea of CAD OSE, written anew).

The NAB leaders score *how unexpected a pattern is*, not how far a value is
from one forecast. This detector keeps that idea and nothing of their code:

1. *Quantise.* Each value becomes one of ``levels`` symbols across the range the
   series has recently covered: an envelope ``[lo, hi]`` that widens at once to
   take a new extreme and narrows slowly (by ``narrow`` of its width a point),
   so a range learnt before an old spike is regained. A value outside the
   envelope gets a symbol of its own (below or above).
2. *Learn contexts.* The contexts of orders 1 to ``order`` (the last ``k``
   symbols and the current one) are counted in one table of saturating byte
   counters, indexed by a hash of the context (``2 ** table_bits`` of them).
   Every ``forget`` points the counts are halved, so what the series did long
   ago fades and a new normal becomes familiar.
3. *Surprise.* The raw score is the mean over the orders of ``1 / (1 + count)``
   before the point is counted: 1 when even the pair (previous symbol,
   current symbol) was never seen, about 0 when every context is familiar.
   ``anomaly_score = raw / threshold``.
4. *One report per anomaly, a warm-up.* Nothing reaches 1 in the first
   ``warmup`` points (the contexts are still being learnt; NAB likewise does
   not count its probationary period), and after a point reaches 1 every
   score is capped below 1 for ``rest`` points (CAD OSE's rest period).

Per point: a few integer operations and ``order`` byte-table lookups; state: the
table (``2 ** table_bits`` bytes) and a few numbers. No band: ``yhat`` is NaN.
"""

from __future__ import annotations

import math
from array import array
from typing import Any, ClassVar

from aiopsd.detectors.anomaly.base import Constraint, DetectorBase, FloatArray, Interval, Score
from aiopsd.detectors.anomaly.calibrate import BELOW_ONE

_HALVE = bytes(c >> 1 for c in range(256))
_SLOTS: dict[tuple[int, int], tuple[int, ...]] = {}  # (levels, table_bits) -> slot of each symbol


class ContextDetector(DetectorBase):
    """Streaming context-surprise detector over quantised values."""

    _fitted_attr = "counts_"
    _parameter_constraints: ClassVar[dict[str, Constraint]] = {
        "levels": Interval(int, 2, 64),
        "order": Interval(int, 0, 8),
        "table_bits": Interval(int, 6, 20),
        "span": Interval(int, 1, 64),
        "forget": Interval(int, 1),
        "threshold": Interval(float, 0, 1, closed="right"),
        "rest": Interval(int, 0),
        "warmup": Interval(int, 0),
    }

    def __init__(
        self,
        *,
        levels: int = 8,
        order: int = 0,
        span: int = 3,
        table_bits: int = 10,
        forget: int = 2000,
        threshold: float = 0.5,
        rest: int = 100,
        warmup: int = 300,
    ) -> None:
        self.levels = levels
        self.order = order
        self.span = span
        self.table_bits = table_bits
        self.forget = forget
        self.threshold = threshold
        self.rest = rest
        self.warmup = warmup

    def get_tags(self) -> dict[str, Any]:
        return {**super().get_tags(), "memory_bound": 20_000}

    def _fit(self, timestamps: FloatArray, values: FloatArray) -> None:
        self.counts_ = bytearray(1 << self.table_bits)
        self.slots_ = self._slots()
        self.origin_ = math.nan
        self.step_ = math.nan
        self.first_: array[float] | None = array("d")  # the warm-up values, until the quantum is fixed
        self.recent_ = 0  # the last ``order`` symbols, packed base 2 ** 16, newest lowest
        self.seen_ = 0  # points seen
        self.tail_ = array("d", [0.0]) * self.span  # surprise of the last ``span`` points (ring)
        self.since_high_ = self.rest  # points since a raw score last reached the threshold
        for v in values.tolist():
            if math.isfinite(v):
                self._learn(v)

    def _fix_quantum(self, first: array[float]) -> None:
        """Quantum from the warm-up: its 1 %..99 % range divided into ``levels``; then learn the warm-up."""
        ordered = sorted(first)
        lo = ordered[int(0.01 * (len(ordered) - 1))]
        hi = ordered[int(0.99 * (len(ordered) - 1))]
        floor = 1e-9 + 1e-6 * abs(ordered[len(ordered) // 2])
        self.origin_ = lo
        self.step_ = max((hi - lo) / self.levels, floor)
        self.first_ = None
        self.seen_ = 0
        for v in first:
            self._learn(v)

    def _symbol(self, value: float) -> int:
        """The quantised value, clamped to ``levels`` quanta below and above the warm-up range."""
        q = math.floor((value - self.origin_) / self.step_)
        return min(max(q, -self.levels), 2 * self.levels) + self.levels

    def _learn(self, value: float) -> float:
        """Count the contexts ending at ``value``; return the raw surprise (counted before this point)."""
        first = self.first_
        if first is not None:
            first.append(value)
            if len(first) >= max(self.warmup, 2):
                self._fix_quantum(first)
            return 0.0
        levels = self.levels
        q = math.floor((value - self.origin_) / self.step_)  # _symbol, written out (hot path)
        sym = (-levels if q < -levels else 2 * levels if q > 2 * levels else q) + levels
        counts = self.counts_
        if self.order:
            known, surprise = self._count_contexts(sym)
        else:  # order 0: the bin alone, its table slot looked up (the same slot _count_contexts would use)
            known, i = 0, self.slots_[sym]
            c = counts[i]
            surprise = 1.0 / (1.0 + c)
            if c < 255:
                counts[i] = c + 1
        self.seen_ += 1
        if self.seen_ % self.forget == 0:
            self.counts_ = bytearray(counts.translate(_HALVE))
        tail = self.tail_
        tail[self.seen_ % self.span] = surprise / (known + 1)
        return sum(tail) / self.span

    def _slots(self) -> tuple[int, ...]:
        """Table slot of each order-0 context (symbol): what :meth:`_count_contexts` would hash to.

        Derived from ``levels`` and ``table_bits`` only, so one tuple is shared by every series
        with those parameters (no memory per series beyond the reference)."""
        key = (self.levels, self.table_bits)
        slots = _SLOTS.get(key)
        if slots is None:
            mask = (1 << self.table_bits) - 1
            slots = _SLOTS[key] = tuple(hash((sym, 0)) & mask for sym in range(3 * self.levels + 1))
        return slots

    def _count_contexts(self, sym: int) -> tuple[int, float]:
        """Count the contexts of orders 0..``order`` ending at ``sym``; (orders known, summed surprise)."""
        counts, mask = self.counts_, (1 << self.table_bits) - 1
        known = min(self.seen_, self.order)
        code, recent, surprise = sym, self.recent_, 0.0
        for k in range(known + 1):
            if k:
                code = (code << 16) | (recent & 0xFFFF)
                recent >>= 16
            i = hash((code, k)) & mask  # int and tuple hashes do not depend on PYTHONHASHSEED
            c = counts[i]
            surprise += 1.0 / (1.0 + c)
            if c < 255:
                counts[i] = c + 1
        self.recent_ = ((self.recent_ << 16) | sym) & ((1 << (16 * self.order)) - 1)
        return known, surprise

    def _update(self, timestamp: float, value: float) -> Score:
        return Score(self._score(value))

    def _score(self, value: float) -> float:
        """``anomaly_score`` of a finite value (what ``default`` calls for its context view)."""
        anomaly = self._learn(value) / self.threshold
        self.since_high_ += 1
        calm = self.since_high_ > self.rest
        if anomaly >= 1.0:
            self.since_high_ = 0
        if self.first_ is not None or not calm:
            anomaly = min(anomaly, BELOW_ONE)
        return anomaly
