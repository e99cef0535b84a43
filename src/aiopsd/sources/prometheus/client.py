"""Prometheus range queries over httpx, with a timeout, no hidden retries, and chunked long reads.

One ``query_range`` is one HTTP request (POST, so a long PromQL expression never meets a URL
limit) parsed once to numpy (:mod:`.matrix`). :func:`read_range` splits a long read (a
warm-up's lookback) into chunks that stay below Prometheus' 11,000 points per series and
within a samples budget per request (series x points, ``prometheus.max_samples_per_query``,
kept well below Prometheus' ``--query.max-samples``), and asks for them uncompressed:
Prometheus took 26 s to gzip a 368 MB warm-up answer that it serves in 3 s as is.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Protocol

import httpx

from aiopsd.config import PrometheusConfig
from aiopsd.errors import SourceError
from aiopsd.sources.prometheus.matrix import Matrix, merge, parse_matrix

logger = logging.getLogger(__name__)

# Prometheus refuses more than 11,000 points per series in one query_range.
MAX_POINTS = 10_000


class RangeClient(Protocol):
    """Anything that answers range queries like Prometheus (a watch depends only on this)."""

    def query_range(
        self, name: str, query: str, start: float, end: float, step: float, *, identity: bool = False
    ) -> Matrix:
        """All series of ``query`` evaluated at ``start``, ``start + step``, ... ``<= end`` (epoch seconds).

        ``identity``: ask for an uncompressed answer (large reads on a near network).
        """


class PrometheusClient:
    """One Prometheus server. Every failure is a :class:`SourceError`, never an empty result."""

    def __init__(self, config: PrometheusConfig) -> None:
        self.config = config
        self.http = httpx.Client(
            base_url=config.url.rstrip("/"),
            timeout=config.timeout,
            follow_redirects=False,
            transport=httpx.HTTPTransport(retries=0),
        )

    def close(self) -> None:
        self.http.close()

    def query_range(
        self, name: str, query: str, start: float, end: float, step: float, *, identity: bool = False
    ) -> Matrix:
        what = f"the query for {name}"
        headers = {"Accept-Encoding": "identity"} if identity else {}
        form = {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}s"}
        try:
            resp = self.http.post("/api/v1/query_range", data=form, headers=headers)
        except httpx.HTTPError as exc:
            raise SourceError(f"Prometheus at {self.config.url} unreachable: {exc.__class__.__name__}") from exc
        if resp.status_code in (400, 422, 503) and resp.headers.get("content-type", "").startswith("application/json"):
            return parse_matrix(resp.content, what=what)  # raises with Prometheus' own reason
        if resp.status_code != 200:
            raise SourceError(f"Prometheus rejected {what}: HTTP {resp.status_code}")
        return parse_matrix(resp.content, what=what)

    def query(self, query: str) -> list[tuple[dict[str, str], float]]:
        """An instant query: (labels, value) of every sample now (a scalar is one sample with no labels).

        An unreachable server or a rejected query is a :class:`SourceError`, never an empty result.
        """
        try:
            resp = self.http.post("/api/v1/query", data={"query": query})
        except httpx.HTTPError as exc:
            raise SourceError(f"Prometheus at {self.config.url} unreachable: {exc.__class__.__name__}") from exc
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("status") != "success":
            reason = body.get("error") if isinstance(body, dict) else None
            raise SourceError(f"Prometheus rejected the query: {reason or f'HTTP {resp.status_code}'}")
        data = body.get("data") or {}
        result = data.get("result")
        if data.get("resultType") in ("scalar", "string") and isinstance(result, list):
            return [({}, float(result[1]))]  # [time, "value"]
        if data.get("resultType") != "vector" or not isinstance(result, list):
            raise SourceError(f"Prometheus answered the query with a {data.get('resultType')!r}, not an instant vector")
        out: list[tuple[dict[str, str], float]] = []
        for item in result:
            value = item.get("value") or [0, "NaN"]
            labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items()}
            out.append((labels, float(value[1])))
        return out


def chunks(start: float, end: float, step: float, *, series: int, max_samples: int) -> list[tuple[float, float]]:
    """``[start, end]`` on the ``step`` grid as consecutive ``(start, end)`` reads.

    Each read has at most :data:`MAX_POINTS` points per series and at most ``max_samples``
    samples for ``series`` series (at least one point a read, whatever the budget).
    """
    points = math.floor((end - start) / step + 1e-9) + 1
    if points <= 0:
        return []
    per = max(1, min(MAX_POINTS, max_samples // max(series, 1)))
    out = []
    for first in range(0, points, per):
        last = min(points, first + per) - 1
        out.append((start + first * step, start + last * step))
    return out


def read_range(
    client: RangeClient,
    name: str,
    query: str,
    start: float,
    end: float,
    step: float,
    *,
    series: int,
    max_samples: int,
) -> Matrix:
    """``query`` over ``[start, end]`` in as many chunks as :func:`chunks` plans, merged in time order.

    ``series`` is how many series the answer is expected to hold (what the watch tracks, or
    what a one-point probe returned). A read of more than one chunk is asked for uncompressed.
    """
    plan = chunks(start, end, step, series=series, max_samples=max_samples)
    if not plan:
        return merge([])
    many = len(plan) > 1
    parts: Sequence[Matrix] = [client.query_range(name, query, s, e, step, identity=many) for s, e in plan]
    if many:
        logger.info(
            "watch %s: read %d points of %d series in %d chunks", name, sum(p.samples for p in parts), series, len(plan)
        )
    return merge(parts)
