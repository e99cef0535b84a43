"""query_range answers parsed straight to numpy: values, labels, special floats, and malformed bodies refused."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiopsd.errors import SourceError
from aiopsd.sources.prometheus.matrix import from_arrays, labels_of, merge, parse_matrix, select


def body(result: Sequence[Mapping[str, object]], **extra: object) -> bytes:
    return json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}, **extra}).encode()


def test_every_series_and_point_is_parsed_with_its_labels() -> None:
    m = parse_matrix(
        body(
            [
                {
                    "metric": {"job": "a", "instance": 'x"],[1,"2'},
                    "values": [[1700000000, "1.5"], [1700000015.5, "NaN"]],
                },
                {"metric": {}, "values": []},
                {"metric": {"job": "b"}, "values": [[1700000030, "+Inf"], [1700000045, "-Inf"], [1700000060, "1e-3"]]},
            ]
        ),
        what="the query for w",
    )
    assert len(m) == 3 and m.samples == 5
    first, empty, third = m
    assert first.labels == {"job": "a", "instance": 'x"],[1,"2'}
    assert first.timestamps.tolist() == [1700000000.0, 1700000015.5]
    assert first.values[0] == 1.5 and math.isnan(first.values[1])
    assert empty.labels == {} and empty.values.size == 0
    assert third.values.tolist() == [math.inf, -math.inf, 0.001]


@given(
    st.lists(
        st.lists(st.floats(allow_nan=False, width=64), max_size=20),
        max_size=8,
    )
)
def test_values_round_trip_exactly(series: list[list[float]]) -> None:
    result = [
        {"metric": {"i": str(i)}, "values": [[1000 + k, repr(v)] for k, v in enumerate(vals)]}
        for i, vals in enumerate(series)
    ]
    m = parse_matrix(body(result), what="q")
    assert [s.values.tolist() for s in m] == series
    assert [labels_of(r) for r in m.metric_raw] == [{"i": str(i)} for i in range(len(series))]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "malformed"),
        (json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error"}).encode(), "bad_data"),
        (json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}).encode(), "not a matrix"),
        (body([{"metric": {}, "values": [[1, "x"]]}]), "not numbers|pairs"),
        (body([{"metric": {}, "values": [[1, "2", "3"]]}]), "pairs"),
        (body([{"metric": {"a": 1}, "values": []}]), "malformed label set"),
    ],
)
def test_a_malformed_answer_is_a_source_error_not_an_empty_result(payload: bytes, reason: str) -> None:
    with pytest.raises(SourceError, match=reason):
        for s in parse_matrix(payload, what="the query for w"):
            assert s.labels


def test_chunks_merge_in_time_order_by_series() -> None:
    a = from_arrays(
        [({"s": "1"}, np.array([1.0, 2.0]), np.array([10.0, 20.0])), ({"s": "2"}, np.array([1.0]), np.array([5.0]))]
    )
    b = from_arrays([({"s": "2"}, np.array([3.0]), np.array([6.0])), ({"s": "3"}, np.array([3.0]), np.array([7.0]))])
    m = merge([a, b])
    assert [(s.labels["s"], s.timestamps.tolist(), s.values.tolist()) for s in m] == [
        ("1", [1.0, 2.0], [10.0, 20.0]),
        ("2", [1.0, 3.0], [5.0, 6.0]),
        ("3", [3.0], [7.0]),
    ]
    assert len(merge([])) == 0


@given(st.lists(st.tuples(st.integers(min_value=0, max_value=6), st.booleans()), max_size=10))
def test_select_keeps_the_flagged_series_with_their_own_points(shape: list[tuple[int, bool]]) -> None:
    series = [
        ({"i": str(i)}, np.arange(n, dtype=np.float64) + i, np.full(n, float(i))) for i, (n, _) in enumerate(shape)
    ]
    m = from_arrays(series)
    kept = select(m, np.array([k for _, k in shape], dtype=np.bool_))
    expect = [(labels, ts.tolist(), vs.tolist()) for (labels, ts, vs), (_, k) in zip(series, shape, strict=True) if k]
    assert [(s.labels, s.timestamps.tolist(), s.values.tolist()) for s in kept] == expect
    assert kept.samples == sum(len(ts) for _, ts, _ in expect)
