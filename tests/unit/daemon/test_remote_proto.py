"""The hand-framed WriteRequest is exactly what protobuf itself writes for the same series."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aiopsd.daemon.remote_proto import Label, Sample, TimeSeries, WriteRequest, around_name, encode_request, name_label

names = st.text(alphabet="abcXYZ_", min_size=1, max_size=6).filter(lambda n: n != "__name__")


@given(
    st.lists(
        st.tuples(
            st.dictionaries(names, st.text(max_size=30), max_size=5),
            st.floats(allow_nan=False),
            st.integers(0, 2**62),
        ),
        max_size=20,
    )
)
def test_encoded_request_decodes_to_the_series_with_sorted_labels(
    series: list[tuple[dict[str, str], float, int]],
) -> None:
    rows = []
    for labels, value, ms in series:
        before, after = around_name(labels)
        rows.append((before + name_label("m") + after, value, ms))
    decoded = WriteRequest.FromString(encode_request(rows))
    expected = WriteRequest(
        timeseries=[
            TimeSeries(
                labels=[Label(name=k, value=v) for k, v in sorted({**labels, "__name__": "m"}.items())],
                samples=[Sample(value=value, timestamp=ms)],
            )
            for labels, value, ms in series
        ]
    )
    assert decoded == expected
