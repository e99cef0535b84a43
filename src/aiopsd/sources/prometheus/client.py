"""Prometheus range queries through prometheus-api-client, with a timeout and no hidden retries."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
import requests
from prometheus_api_client.exceptions import PrometheusApiClientException
from prometheus_api_client.prometheus_connect import PrometheusConnect
from urllib3.util.retry import Retry

from aiopsd.config import PrometheusConfig
from aiopsd.errors import SourceError
from aiopsd.models import Series

logger = logging.getLogger(__name__)

# Prometheus refuses more than 11,000 points per series in one query_range.
MAX_POINTS = 10_000


class RangeClient(Protocol):
    """Anything that answers range queries like Prometheus (a watch depends only on this)."""

    def query_range(self, name: str, query: str, start: float, end: float, step: float) -> list[Series]: ...


class PrometheusClient:
    """One Prometheus server. Every failure is a :class:`SourceError`, never an empty result."""

    def __init__(self, config: PrometheusConfig) -> None:
        self.config = config
        self.client = PrometheusConnect(
            # requests takes float seconds; the client annotates int.
            url=config.url,
            disable_ssl=False,
            timeout=config.timeout,  # type: ignore[arg-type]
            retry=Retry(total=0, connect=0, read=0, redirect=0, status=0),
        )

    def query_range(self, name: str, query: str, start: float, end: float, step: float) -> list[Series]:
        """All series of ``query`` between ``start`` and ``end`` (epoch seconds), oldest first."""
        if end - start > step * MAX_POINTS:
            start = end - step * MAX_POINTS
        try:
            result = self.client.custom_query_range(
                query=query,
                start_time=datetime.fromtimestamp(start, UTC),
                end_time=datetime.fromtimestamp(end, UTC),
                step=f"{step:g}s",
            )
        except PrometheusApiClientException as exc:
            raise SourceError(f"Prometheus rejected the query for {name}: {exc}") from exc
        except requests.RequestException as exc:
            raise SourceError(f"Prometheus at {self.config.url} unreachable: {exc.__class__.__name__}") from exc
        out: list[Series] = []
        for item in result:
            pairs = item.get("values") or []
            stamps = np.array([float(p[0]) for p in pairs], dtype=np.float64)
            values = np.array([p[1] for p in pairs], dtype=np.float64)  # strings parsed once
            labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items()}
            out.append(
                Series(source=name, labels=labels, timestamps=tuple(stamps.tolist()), values=tuple(values.tolist()))
            )
        return out

    def query(self, query: str) -> list[tuple[dict[str, str], float]]:
        """An instant query: (labels, value) of every sample now (a scalar is one sample with no labels).

        An unreachable server or a rejected query is a :class:`SourceError`, never an empty result.
        """
        try:
            result = self.client.custom_query(query=query)
        except PrometheusApiClientException as exc:
            raise SourceError(f"Prometheus rejected the query: {exc}") from exc
        except requests.RequestException as exc:
            raise SourceError(f"Prometheus at {self.config.url} unreachable: {exc.__class__.__name__}") from exc
        if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
            return [({}, float(result[1]))]  # a scalar (or a string): [time, "value"]
        out: list[tuple[dict[str, str], float]] = []
        for item in result or []:
            value = item.get("value") or [0, "NaN"]
            labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items()}
            out.append((labels, float(value[1])))
        return out
