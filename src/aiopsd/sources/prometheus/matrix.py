"""A ``query_range`` answer parsed once, straight to numpy: one struct of arrays for all series.

Prometheus answers a range query with a JSON matrix, every value a string
(``[[1700000000,"1.5"],...]``). Decoding that with a generic JSON parser builds two Python
objects per sample and a list per point; at 100,000 series that was half of a poll's time
(issue 16). Here msgspec validates the whole document but keeps each series' ``metric`` and
``values`` as raw JSON bytes (:class:`msgspec.Raw`): the values of all series are joined,
their brackets, quotes and commas blanked, and numpy parses every number in one call
(``NaN``, ``+Inf`` and ``-Inf`` included). No Python object is made per sample.

A series' labels stay raw bytes (``metric_raw``) until someone asks for them: a watch keys
the series it already knows by those bytes (Prometheus writes a label set the same way every
time), so a poll decodes the labels of new series only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import msgspec
import numpy as np
import numpy.typing as npt

from aiopsd.errors import SourceError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# The punctuation of a matrix's "values" array, blanked so the rest is whitespace-separated numbers.
_BLANK = bytes.maketrans(b'[]",', b"    ")
_LABELS = msgspec.json.Decoder(dict[str, str])


class _Item(msgspec.Struct):
    metric: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"{}"))
    values: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"[]"))


class _Data(msgspec.Struct):
    resultType: str  # noqa: N815 - Prometheus' field name
    result: list[_Item]


class _Body(msgspec.Struct):
    status: str
    data: _Data | None = None
    errorType: str = ""  # noqa: N815 - Prometheus' field name
    error: str = ""


_BODY = msgspec.json.Decoder(_Body)


class RangeSeries(NamedTuple):
    """One series of a :class:`Matrix`: its labels and views of its points (oldest first)."""

    labels: dict[str, str]
    timestamps: FloatArray
    values: FloatArray


@dataclass(frozen=True, slots=True)
class Matrix:
    """Series ``i`` is ``metric_raw[i]`` with points ``timestamps[offsets[i]:offsets[i + 1]]``."""

    metric_raw: list[bytes]
    offsets: IntArray
    timestamps: FloatArray
    values: FloatArray

    def __len__(self) -> int:
        return len(self.metric_raw)

    def __getitem__(self, i: int) -> RangeSeries:
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        return RangeSeries(labels_of(self.metric_raw[i]), self.timestamps[lo:hi], self.values[lo:hi])

    def __iter__(self) -> Iterator[RangeSeries]:
        for i in range(len(self)):
            yield self[i]

    @property
    def samples(self) -> int:
        return int(self.timestamps.size)


def labels_of(metric_raw: bytes) -> dict[str, str]:
    """The label set of a series from its raw JSON ``metric`` object (names and values must be strings)."""
    try:
        return _LABELS.decode(metric_raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise SourceError(f"Prometheus answered with a malformed label set: {exc}") from exc


def empty() -> Matrix:
    return Matrix([], np.zeros(1, dtype=np.int64), np.empty(0), np.empty(0))


def from_arrays(series: Sequence[tuple[dict[str, str], FloatArray, FloatArray]]) -> Matrix:
    """A matrix from (labels, timestamps, values) triples (test doubles and synthetic sources)."""
    if not series:
        return empty()
    sizes = np.array([len(ts) for _, ts, _ in series], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
    return Matrix(
        [msgspec.json.encode(dict(sorted(labels.items()))) for labels, _, _ in series],
        offsets,
        np.concatenate([np.asarray(ts, dtype=np.float64) for _, ts, _ in series]),
        np.concatenate([np.asarray(vs, dtype=np.float64) for _, _, vs in series]),
    )


def select(matrix: Matrix, keep: npt.NDArray[np.bool_]) -> Matrix:
    """The series of ``matrix`` where ``keep`` (one flag per series) is true, in their order.

    One mask over the samples: no per-series copy, no Python object per sample.
    """
    if bool(keep.all()):
        return matrix
    sizes = np.diff(matrix.offsets)
    samples = np.repeat(keep, sizes)
    return Matrix(
        [raw for raw, k in zip(matrix.metric_raw, keep.tolist(), strict=True) if k],
        np.concatenate(([0], np.cumsum(sizes[keep]))).astype(np.int64),
        matrix.timestamps[samples],
        matrix.values[samples],
    )


def parse_matrix(body: bytes, *, what: str) -> Matrix:
    """Parse a ``query_range`` response body; anything but a well-formed matrix is a :class:`SourceError`.

    ``what`` names the query in the error ("the query for <watch>").
    """
    try:
        doc = _BODY.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise SourceError(f"Prometheus answered {what} with a malformed body: {exc}") from exc
    if doc.status != "success" or doc.data is None:
        raise SourceError(f"Prometheus rejected {what}: {doc.errorType or doc.status}: {doc.error}"[:500])
    if doc.data.resultType != "matrix":
        raise SourceError(f"Prometheus answered {what} with a {doc.data.resultType[:40]!r}, not a matrix")
    items = doc.data.result
    if not items:
        return empty()
    raws = [bytes(it.values) for it in items]
    # n pairs are n + 1 opening brackets ("[[t,"v"],...]"); parsed, they must be exactly 2n numbers.
    pairs = np.fromiter((r.count(b"[") - 1 for r in raws), dtype=np.int64, count=len(raws))
    total = int(pairs.sum())
    if total == 0:  # numpy reads blank text as [-1.0]
        return Matrix(
            [bytes(it.metric) for it in items], np.zeros(len(items) + 1, dtype=np.int64), np.empty(0), np.empty(0)
        )
    joined = b" ".join(raws).translate(_BLANK)
    try:
        flat = np.fromstring(joined, dtype=np.float64, sep=" ")  # text mode: not the deprecated binary one
    except ValueError as exc:  # warnings turned into errors: unparseable text
        raise SourceError(f"Prometheus answered {what} with values that are not numbers") from exc
    if flat.size != 2 * total or (pairs < 0).any():
        raise SourceError(f"Prometheus answered {what} with values that are not [time, number] pairs")
    points = flat.reshape(-1, 2)
    offsets = np.concatenate(([0], np.cumsum(pairs))).astype(np.int64)
    return Matrix(
        [bytes(it.metric) for it in items],
        offsets,
        np.ascontiguousarray(points[:, 0]),
        np.ascontiguousarray(points[:, 1]),
    )


def merge(chunks: Sequence[Matrix]) -> Matrix:
    """The chunks of one range read, in time order, as one matrix (series in order of first appearance)."""
    if len(chunks) == 1:
        return chunks[0]
    order: dict[bytes, int] = {}
    pieces: list[list[tuple[FloatArray, FloatArray]]] = []
    for chunk in chunks:
        for i, raw in enumerate(chunk.metric_raw):
            lo, hi = int(chunk.offsets[i]), int(chunk.offsets[i + 1])
            j = order.setdefault(raw, len(order))
            if j == len(pieces):
                pieces.append([])
            pieces[j].append((chunk.timestamps[lo:hi], chunk.values[lo:hi]))
    if not order:
        return empty()
    sizes = np.array([sum(len(t) for t, _ in p) for p in pieces], dtype=np.int64)
    return Matrix(
        list(order),
        np.concatenate(([0], np.cumsum(sizes))).astype(np.int64),
        np.concatenate([t for p in pieces for t, _ in p]),
        np.concatenate([v for p in pieces for _, v in p]),
    )
