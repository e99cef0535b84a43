"""The Prometheus remote-write 1.0 messages (``prometheus.WriteRequest``), built at import by protobuf.

The four messages remote write needs (from prometheus/prompb ``remote.proto`` and
``types.proto``: ``WriteRequest.timeseries = 1``, ``TimeSeries.labels = 1``,
``TimeSeries.samples = 2``, ``Label.name/value = 1/2``, ``Sample.value = 1`` (double),
``Sample.timestamp = 2`` (int64, milliseconds)) are declared here as a descriptor, so no
generated ``_pb2`` file or ``protoc`` is needed. Metadata, exemplars and histograms are
not sent.

:func:`encode_request` writes a request by concatenating protobuf-serialised parts: protobuf
merges repeated fields of concatenated messages, so a series' ``Label`` part is serialised
once (:func:`series_labels`) and each sample adds only its ``Sample`` part. Building one
``TimeSeries`` message per sample cost 29 µs a series (4 gauges) against about 6 µs this
way, measured at 25,000 series; only the outer length prefix is written by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_PACKAGE = "aiopsd.remote_write"


def _classes() -> dict[str, Any]:
    fdp = descriptor_pb2.FileDescriptorProto(name="aiopsd/remote_write.proto", package=_PACKAGE, syntax="proto3")
    f = descriptor_pb2.FieldDescriptorProto
    shapes: dict[str, list[tuple[str, int, int, str]]] = {
        "Label": [("name", f.TYPE_STRING, f.LABEL_OPTIONAL, ""), ("value", f.TYPE_STRING, f.LABEL_OPTIONAL, "")],
        "Sample": [("value", f.TYPE_DOUBLE, f.LABEL_OPTIONAL, ""), ("timestamp", f.TYPE_INT64, f.LABEL_OPTIONAL, "")],
        "TimeSeries": [
            ("labels", f.TYPE_MESSAGE, f.LABEL_REPEATED, "Label"),
            ("samples", f.TYPE_MESSAGE, f.LABEL_REPEATED, "Sample"),
        ],
        "WriteRequest": [("timeseries", f.TYPE_MESSAGE, f.LABEL_REPEATED, "TimeSeries")],
    }
    for name, fields in shapes.items():
        msg = fdp.message_type.add(name=name)
        for number, (fname, ftype, label, tname) in enumerate(fields, 1):
            field = msg.field.add(name=fname, number=number, type=ftype, label=label)
            if tname:
                field.type_name = f".{_PACKAGE}.{tname}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{n}")) for n in shapes}


_MESSAGES = _classes()
Label: Any = _MESSAGES["Label"]
Sample: Any = _MESSAGES["Sample"]
TimeSeries: Any = _MESSAGES["TimeSeries"]
WriteRequest: Any = _MESSAGES["WriteRequest"]


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def series_labels(labels: Iterable[tuple[str, str]]) -> bytes:
    """Labels as the ``labels`` part of a TimeSeries (sorted by name, as remote write requires)."""
    ordered = sorted(labels)
    return bytes(TimeSeries(labels=[Label(name=k, value=v) for k, v in ordered]).SerializeToString())


def around_name(labels: dict[str, str]) -> tuple[bytes, bytes]:
    """A series' labels (without ``__name__``) serialised as the parts before and after ``__name__``.

    Every metric of the series sorts ``__name__`` to the same place, so ``before + name_label(m)
    + after`` is the sorted label part of each metric ``m``, from two cached byte strings.
    """
    items = sorted(labels.items())
    return series_labels(i for i in items if i[0] < "__name__"), series_labels(i for i in items if i[0] > "__name__")


def name_label(metric: str) -> bytes:
    return series_labels([("__name__", metric)])


def encode_request(series: Sequence[tuple[bytes, float, int]]) -> bytes:
    """A WriteRequest of one sample per series: ``(series_labels(...), value, timestamp_ms)`` each."""
    parts = []
    for labels, value, ms in series:
        ts = labels + TimeSeries(samples=[Sample(value=value, timestamp=ms)]).SerializeToString()
        parts.append(b"\x0a" + _varint(len(ts)) + ts)  # WriteRequest.timeseries, field 1, length-delimited
    return b"".join(parts)
