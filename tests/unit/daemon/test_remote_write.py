"""Hostile labels never stop the writer: a label value protobuf cannot encode drops that point, counted."""

from __future__ import annotations

import cramjam

from aiopsd.config.sources import RemoteWriteConfig
from aiopsd.daemon.metrics import Metrics
from aiopsd.daemon.remote_proto import WriteRequest
from aiopsd.daemon.remote_write import RemoteWriter


def test_unencodable_labels_drop_only_their_point_and_invalid_names_are_left_out() -> None:
    metrics = Metrics()
    writer = RemoteWriter(RemoteWriteConfig(), "http://127.0.0.1:9/api/v1/write", metrics)
    nan = float("nan")
    batch = [
        ("w", "a", {"host": "\ud800"}, 10.0, (1.0, 2.0, 1.0, 3.0)),
        ("w", "b", {"host": "ok", "bad-name": "x", "__meta": "y", "aiopsd_watch": "spoof"}, 10.0, (0.5, nan, nan, nan)),
    ]
    body, samples = writer._encode(batch)
    req = WriteRequest.FromString(bytes(cramjam.snappy.decompress_raw(body)))
    assert samples == 1
    [ts] = req.timeseries
    assert [(label.name, label.value) for label in ts.labels] == [
        ("__name__", "aiopsd_anomaly_score"),
        ("aiopsd_watch", "w"),
        ("host", "ok"),
    ]
    assert [(s.value, s.timestamp) for s in ts.samples] == [(0.5, 10_000)]
    assert metrics.registry.get_sample_value("aiopsd_remote_write_samples_total", {"result": "rejected"}) == 1
    writer.stop(0)
