"""The webhook bench's side-by-side run: aiopsd and Event-Driven Ansible with the same sender and shape.

One alert per request, 16 in flight, 30 % of the alerts delivered a second time
about 37 requests later; each round runs EDA (when asked) and then a fresh aiopsd.
Besides requests/s and latency, the table shows the server process's CPU time per
request: on a machine shared with other work, requests/s moves with the load, CPU
per request much less.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

import psutil

from bench import webhook_eda
from bench.webhook_daemon import start_daemon, stop, stored_fingerprints
from bench.webhook_send import free_port, pct, spawn_sender

COMPARE_ALERTS = 6000
COMPARE_REDELIVER = 0.3


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) the server process has used so far."""
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def _load(url: str, pid: int, alerts: int, out: Path) -> dict[str, Any]:
    """The compare shape against ``url``; adds the server's CPU per request (less sensitive to other load)."""
    before = _cpu(pid)
    spawn_sender(url, "cmp", alerts, batch=1, inflight=16, out=out, redeliver=COMPARE_REDELIVER).wait()
    res: dict[str, Any] = json.loads(out.read_text())
    res["cpu_us"] = (_cpu(pid) - before) / max(1, res["requests"]) * 1e6
    return res


def _row(who: str, rnd: int, res: dict[str, Any], durable: str) -> dict[str, Any]:
    lat = res["latencies"]
    return {
        "cpu_us": res["cpu_us"],
        "who": who,
        "round": rnd,
        "requests": res["requests"],
        "requests_per_s": res["requests"] / res["elapsed"],
        "p50_ms": pct(lat, 50) * 1000,
        "p99_ms": pct(lat, 99) * 1000,
        "codes": res["codes"],
        "durable": durable,
        "load": os.getloadavg()[0],
    }


def _compare_aiopsd(rnd: int, alerts: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="aiopsd-bench-") as tmp:
        work = Path(tmp)
        d = start_daemon(work, [])
        try:
            res = _load(f"{d.url}/api/v1/alerts", d.proc.pid, alerts, work / "sender.json")
            stored = len(stored_fingerprints(work))
        finally:
            stop(d)
    ok = "yes" if stored == alerts else f"NO: {stored} of {alerts} stored"
    return _row("aiopsd", rnd, res, f"{ok} (SQLite WAL, synchronous=FULL)")


def _compare_eda(eda: webhook_eda.Eda, rnd: int, alerts: int) -> dict[str, Any]:
    running = webhook_eda.start(eda, free_port())
    try:
        res = _load(running.url, running.proc.pid, alerts, eda.root / f"sender-{rnd}.json")
    finally:
        webhook_eda.stop(running)
    return _row(f"EDA (ansible-rulebook {webhook_eda.RULEBOOK_VERSION})", rnd, res, "no (in-memory queue)")


def compare(
    *, with_eda: bool, collection: Path | None, rounds: int, alerts: int = COMPARE_ALERTS
) -> tuple[list[dict[str, Any]], str | None]:
    """Rows per (round, server), EDA first in each round; and why EDA did not run, if it did not."""
    rows: list[dict[str, Any]] = []
    eda: webhook_eda.Eda | None = None
    why: str | None = None
    if with_eda:
        root = Path(tempfile.mkdtemp(prefix="aiopsd-bench-eda-"))
        try:
            print("installing ansible-rulebook and ansible.eda into a throwaway venv...", flush=True)
            eda = webhook_eda.install(root, collection)
        except webhook_eda.EdaUnavailable as exc:
            why = str(exc)
            webhook_eda.remove(webhook_eda.Eda(root))
    try:
        for rnd in range(1, rounds + 1):
            if eda is not None:
                rows.append(_compare_eda(eda, rnd, alerts))
            rows.append(_compare_aiopsd(rnd, alerts))
    finally:
        if eda is not None:
            webhook_eda.remove(eda)
    return rows, why


def print_compare(rows: list[dict[str, Any]], why: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(
        title=f"webhook intake, one alert per request, 16 in flight, {COMPARE_REDELIVER:.0%} redelivered, "
        "sender in another process"
    )
    cols = ("server", "round", "requests", "requests/s", "p50 ms", "p99 ms", "CPU us/request", "status codes")
    for col in (*cols, "durable", "load1"):
        t.add_column(col, justify="left" if col in ("server", "durable") else "right")
    for r in rows:
        t.add_row(
            r["who"],
            str(r["round"]),
            str(r["requests"]),
            f"{r['requests_per_s']:.0f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            f"{r['cpu_us']:.0f}",
            json.dumps(r["codes"]),
            r["durable"],
            f"{r['load']:.1f}",
        )
    console = Console(width=200)
    console.print(t)
    ours = [r for r in rows if r["who"] == "aiopsd"]
    theirs = [r for r in rows if r["who"] != "aiopsd"]
    rate = statistics.median(r["requests_per_s"] for r in ours)
    p99 = max(r["p99_ms"] for r in ours)
    verdict = "met" if rate >= 1300 and p99 < 50 else "MISSED"
    console.print(
        f"aiopsd: median {rate:.0f} requests/s, worst p99 {p99:.1f} ms (target >= 1,300/s, p99 < 50 ms: {verdict})"
    )
    if theirs:
        eda_rate = statistics.median(r["requests_per_s"] for r in theirs)
        ratio = rate / eda_rate
        console.print(
            f"EDA: median {eda_rate:.0f} requests/s; aiopsd / EDA = {ratio:.2f}x "
            f"(target >= 1.5x: {'met' if ratio >= 1.5 else 'MISSED'})"
        )
    elif why:
        console.print(f"EDA not run: {why}")
