"""Shared bits of ``bench/scale.py replicas``: the stack it measures against and how it reads a process's CPU."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.sharding import scrape_job, series_exporter

from aiopsd.demo import stack
from aiopsd.demo.postgres import running_postgres

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


@dataclass(frozen=True)
class Stack:
    pg_url: str
    prometheus_url: str


@contextmanager
def scale_stack(
    root: Path, series: int, scrape_interval: str, shards: int | None = None, label: str | None = None
) -> Iterator[Stack]:
    """A throwaway PostgreSQL, an exporter of ``series`` gauges and a real Prometheus scraping it (writing
    each series' shard into ``label`` when given)."""
    with ExitStack() as es:
        pg = es.enter_context(running_postgres())
        target = es.enter_context(series_exporter(series))
        prom = stack.start_prometheus(
            root / "prom",
            scrape=[scrape_job(target, shards, label)],
            interval=scrape_interval,
        )
        es.callback(prom.stop)
        yield Stack(pg.url, prom.url)


def wait(predicate: object, timeout: float, what: str, interval: float = 0.5) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()  # type: ignore[operator]
        if got:
            return got
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    out = [title, "", "| " + " | ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)) + " |"]
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    out += ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join(out)
