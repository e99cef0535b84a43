"""Webhook load and crash benchmark against a real daemon on SQLite, load generated from other processes.

    python bench/webhook.py                 # load table, then the kill -9 crash run
    python bench/webhook.py load --alerts 20000
    python bench/webhook.py crash --alerts 10000 --dup 0.3

``load``: a sender process posts Alertmanager v4 payloads over loopback with a
fixed number of requests in flight; a 2xx means the alerts are committed. It
prints alerts/s accepted and p50/p99 request latency per batch size.

``crash``: a sender posts every alert once while a second process re-delivers
30 % of them (duplicates); some alerts match a rule whose playbook appends one
line per run to a marker file per finding. The daemon is killed with SIGKILL
mid-burst and restarted; then every alert that got a 2xx must be stored, and no
finding may have more than one run or marker line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
ACT_EVERY = 100  # one alert in this many matches the acting rule in the crash run


# ------------------------------------------------------------------------------- payloads
def make_alert(run: str, i: int, act_every: int = ACT_EVERY) -> dict[str, Any]:
    labels = {"alertname": "BenchAlert", "instance": f"host-{i % 50}", "severity": "warning", "i": str(i)}
    if act_every and i % act_every == 0:
        labels["act"] = "yes"
    return {
        "status": "firing",
        "labels": labels,
        "annotations": {"summary": f"bench alert {i}"},
        "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": f"{run}-{i:07d}",
    }


def make_payload(alerts: list[dict[str, Any]]) -> bytes:
    return json.dumps(
        {
            "version": "4",
            "groupKey": '{}:{alertname="BenchAlert"}',
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "aiopsd",
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager",
            "alerts": alerts,
        }
    ).encode()


def is_duplicate_pick(i: int, ratio: float) -> bool:
    return (i * 2654435761 % 2**32) / 2**32 < ratio


# ---------------------------------------------------------------------------- the sender
# A minimal HTTP/1.1 keep-alive client on asyncio streams: the load generator must not be the
# bottleneck (httpx costs ~3 ms of CPU per request here, more than the daemon's work).
async def _post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, path: str, body: bytes) -> int:
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def _send(
    url: str, run: str, indices: list[int], batch: int, inflight: int, ack_path: Path | None, act_every: int = ACT_EVERY
) -> dict[str, Any]:
    latencies: list[float] = []
    codes: dict[str, int] = {}
    acked = 0
    parsed = httpx.URL(url)
    host, port, path = str(parsed.host), int(parsed.port or 80), parsed.raw_path.decode()
    queue: asyncio.Queue[list[int]] = asyncio.Queue()
    for k in range(0, len(indices), batch):
        queue.put_nowait(indices[k : k + batch])
    ack = ack_path.open("a", buffering=1) if ack_path else None

    async def worker() -> None:
        nonlocal acked
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while not queue.empty():
            group = queue.get_nowait()
            body = make_payload([make_alert(run, i, act_every) for i in group])
            started = time.perf_counter()
            try:
                if conn is None:
                    conn = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
                code = str(await asyncio.wait_for(_post(*conn, f"{host}:{port}", path, body), 10))
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
                code = exc.__class__.__name__
                if conn is not None:
                    conn[1].close()
                conn = None
            latencies.append(time.perf_counter() - started)
            codes[code] = codes.get(code, 0) + 1
            if code.startswith("2"):
                acked += len(group)
                if ack is not None:
                    ack.write("".join(f"{run}-{i:07d}\n" for i in group))
        if conn is not None:
            conn[1].close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    elapsed = time.perf_counter() - began
    if ack is not None:
        ack.close()
    return {
        "alerts_acked": acked,
        "requests": len(latencies),
        "codes": codes,
        "elapsed": elapsed,
        "latencies": latencies,
    }


def with_redeliveries(alerts: int, ratio: float, lag: float = 37.5) -> list[int]:
    """Every alert once, plus a redelivery of ``ratio`` of them about ``lag`` requests later."""
    keyed = [(float(i), i) for i in range(alerts)]
    keyed += [(i + lag, i) for i in range(alerts) if is_duplicate_pick(i, ratio)]
    return [i for _, i in sorted(keyed)]


def sender_main(args: argparse.Namespace) -> None:
    if args.redeliver:
        indices = with_redeliveries(args.alerts, args.redeliver)
    else:
        indices = [i for i in range(args.alerts) if args.dup_only is None or is_duplicate_pick(i, args.dup_only)]
    result = asyncio.run(
        _send(
            args.url, args.run, indices, args.batch, args.inflight, Path(args.ack) if args.ack else None, args.act_every
        )
    )
    Path(args.out).write_text(json.dumps(result))


def spawn_sender(
    url: str,
    run: str,
    alerts: int,
    *,
    batch: int,
    inflight: int,
    out: Path,
    ack: Path | None = None,
    dup_only: float | None = None,
    act_every: int = ACT_EVERY,
    redeliver: float = 0.0,
) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "send",
        "--url",
        url,
        "--run",
        run,
        "--alerts",
        str(alerts),
        "--batch",
        str(batch),
        "--inflight",
        str(inflight),
        "--out",
        str(out),
        "--act-every",
        str(act_every),
    ]
    if ack is not None:
        cmd += ["--ack", str(ack)]
    if dup_only is not None:
        cmd += ["--dup-only", str(dup_only)]
    if redeliver:
        cmd += ["--redeliver", str(redeliver)]
    return subprocess.Popen(cmd, env=_env())


# ---------------------------------------------------------------------------- the daemon
def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(REPO / "src")
    env["PYTHONPATH"] = f"{src}{os.pathsep}{env['PYTHONPATH']}" if env.get("PYTHONPATH") else src
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    return env


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    url: str


def start_daemon(workdir: Path, rules: list[dict[str, Any]], *, port: int | None = None) -> Daemon:
    (workdir / "rules").mkdir(parents=True, exist_ok=True)
    (workdir / "rules" / "bench.yaml").write_text(yaml.safe_dump({"rules": rules}))
    port = port or free_port()
    cfg = workdir / "aiopsd.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "listen": f"127.0.0.1:{port}",
                "state_url": f"sqlite:///{workdir / 'state' / 'aiopsd.db'}",
                "state_dir": str(workdir / "state"),
                "rules_dir": str(workdir / "rules"),
                "playbooks_dir": str(REPO / "tests" / "playbooks"),
                "dispatch_interval": "0.5s",
                "log_level": "WARNING",
                "actions": {"concurrency": 2},
            }
        )
    )
    with (workdir / "aiopsd.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aiopsd", "run", "--config", str(cfg)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_env(),
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited: {(workdir / 'aiopsd.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return Daemon(proc, url)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("daemon not ready in 60s")


def stop(d: Daemon) -> None:
    if d.proc.poll() is None:
        d.proc.send_signal(signal.SIGTERM)
        try:
            d.proc.wait(60)
        except subprocess.TimeoutExpired:
            d.proc.kill()
            d.proc.wait()


# ------------------------------------------------------------------------------- load
def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def load(alerts: int, shapes: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """One fresh daemon per (alerts per request, requests in flight) shape."""
    rows = []
    for batch, inflight in shapes:
        with tempfile.TemporaryDirectory(prefix="aiopsd-bench-") as tmp:
            work = Path(tmp)
            d = start_daemon(work, [])
            try:
                n = alerts if batch > 1 else min(alerts, 5000)
                out = work / "sender.json"
                spawn_sender(
                    f"{d.url}/api/v1/alerts", f"load{batch}", n, batch=batch, inflight=inflight, out=out
                ).wait()
                res = json.loads(out.read_text())
                lat = res["latencies"]
                stored = _stored(work)
            finally:
                stop(d)
        rows.append(
            {
                "batch": batch,
                "inflight": inflight,
                "alerts": n,
                "acked": res["alerts_acked"],
                "stored": len(stored),
                "alerts_per_s": res["alerts_acked"] / res["elapsed"],
                "requests_per_s": res["requests"] / res["elapsed"],
                "p50_ms": pct(lat, 50) * 1000,
                "p99_ms": pct(lat, 99) * 1000,
                "codes": res["codes"],
            }
        )
    return rows


def _stored(work: Path) -> set[str]:
    db = sqlite3.connect(work / "state" / "aiopsd.db")
    try:
        return {r[0] for r in db.execute("SELECT fingerprint FROM alerts")}
    finally:
        db.close()


# ------------------------------------------------------------------------------ crash
def crash(
    alerts: int,
    dup: float,
    workdir: Path,
    *,
    kill_at: float = 0.4,
    batch: int = 10,
    inflight: int = 8,
    settle_timeout: float = 600,
    act_every: int = ACT_EVERY,
) -> dict[str, Any]:
    """Kill -9 the daemon mid-burst, restart it, and count what was lost or run twice."""
    markers = workdir / "markers"
    rules = [
        {
            "name": "mark-once",
            "match": {"kind": "alert", "labels": {"act": "yes"}},
            "action": {
                "playbook": "marker.yml",
                "targets": "localhost",
                "extra_vars": {"marker_dir": str(markers), "incident": "{{ finding.id }}"},
            },
            "guards": {"timeout": "2m"},
        }
    ]
    port = free_port()
    d = start_daemon(workdir, rules, port=port)
    url = f"{d.url}/api/v1/alerts"
    ack_main, ack_dup = workdir / "acked-main.txt", workdir / "acked-dup.txt"
    main = spawn_sender(
        url,
        "crash",
        alerts,
        batch=batch,
        inflight=inflight,
        out=workdir / "main.json",
        ack=ack_main,
        act_every=act_every,
    )
    dups = spawn_sender(
        url,
        "crash",
        alerts,
        batch=batch,
        inflight=max(1, inflight // 2),
        out=workdir / "dup.json",
        ack=ack_dup,
        dup_only=dup,
        act_every=act_every,
    )

    def acked() -> int:
        return sum(1 for p in (ack_main, ack_dup) if p.exists() for _ in p.open())

    deadline = time.monotonic() + 300
    while acked() < alerts * kill_at and time.monotonic() < deadline and main.poll() is None:
        time.sleep(0.02)
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    killed_after = acked()
    main.wait()
    dups.wait()
    d = start_daemon(workdir, rules, port=port)
    try:
        # Let every queued action finish (interrupted ones are never re-run).
        end = time.monotonic() + settle_timeout
        while time.monotonic() < end:
            runs = httpx.get(f"{d.url}/api/v1/actions?limit=1000", timeout=10).json()
            if not any(r["status"] in ("pending", "running") for r in runs):
                break
            time.sleep(1)
        verify = subprocess.run(
            [sys.executable, "-m", "aiopsd", "audit", "verify", "--config", str(workdir / "aiopsd.yaml")],
            env=_env(),
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        stop(d)
    got_2xx = {line.strip() for p in (ack_main, ack_dup) if p.exists() for line in p.open() if line.strip()}
    stored = _stored(workdir)
    db = sqlite3.connect(workdir / "state" / "aiopsd.db")
    try:
        statuses = dict(db.execute("SELECT status, count(*) FROM action_runs GROUP BY status").fetchall())
        runs_per_decision = (
            db.execute("SELECT max(c) FROM (SELECT count(*) c FROM action_runs GROUP BY decision_id)").fetchone()[0]
            or 0
        )
        acted_findings = db.execute("SELECT count(DISTINCT finding_id) FROM decisions WHERE code='act'").fetchone()[0]
    finally:
        db.close()
    lines = {p.stem: len(p.read_text().split()) for p in markers.glob("*.runs")} if markers.is_dir() else {}
    sent = json.loads((workdir / "main.json").read_text())
    dsent = json.loads((workdir / "dup.json").read_text())
    return {
        "alerts": alerts,
        "duplicate_deliveries": dsent["requests"] * batch if dsent["requests"] else 0,
        "killed_after_2xx": killed_after,
        "got_2xx": len(got_2xx),
        "stored": len(stored),
        "lost": len(got_2xx - stored),
        "requests_failed": sum(v for k, v in {**sent["codes"]}.items() if not k.startswith("2"))
        + sum(v for k, v in dsent["codes"].items() if not k.startswith("2")),
        "acted_findings": acted_findings,
        "runs": statuses,
        "max_runs_per_decision": runs_per_decision,
        "markers": sum(lines.values()),
        "ran_twice": sum(1 for n in lines.values() if n > 1),
        "audit_verify_rc": verify.returncode,
    }


# -------------------------------------------------------------------------------- main
def _print_load(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="webhook load: one daemon, SQLite (WAL, synchronous=FULL), sender in another process")
    for col in (
        "alerts/request",
        "in flight",
        "alerts",
        "2xx alerts",
        "stored",
        "alerts/s",
        "requests/s",
        "p50 ms",
        "p99 ms",
        "status codes",
    ):
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(
            str(r["batch"]),
            str(r["inflight"]),
            str(r["alerts"]),
            str(r["acked"]),
            str(r["stored"]),
            f"{r['alerts_per_s']:.0f}",
            f"{r['requests_per_s']:.0f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            json.dumps(r["codes"]),
        )
    Console(width=200).print(t)


def _print_crash(res: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="kill -9 mid-burst, restart (2xx must be stored; no action twice)")
    t.add_column("measure")
    t.add_column("value", justify="right")
    for k, v in res.items():
        t.add_row(k, json.dumps(v) if isinstance(v, dict) else str(v))
    Console(width=200).print(t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd")
    lp = sub.add_parser("load")
    lp.add_argument("--alerts", type=int, default=20000)
    lp.add_argument("--batch", type=int, action="append", help="alerts per request (repeatable)")
    lp.add_argument("--inflight", type=int, default=16)
    cp = sub.add_parser("crash")
    cp.add_argument("--alerts", type=int, default=10000)
    cp.add_argument("--dup", type=float, default=0.3)
    sp = sub.add_parser("send")
    sp.add_argument("--url", required=True)
    sp.add_argument("--run", required=True)
    sp.add_argument("--alerts", type=int, required=True)
    sp.add_argument("--batch", type=int, default=1)
    sp.add_argument("--inflight", type=int, default=8)
    sp.add_argument("--out", required=True)
    sp.add_argument("--ack")
    sp.add_argument("--dup-only", type=float)
    sp.add_argument("--act-every", type=int, default=ACT_EVERY)
    sp.add_argument("--redeliver", type=float, default=0.0)
    args = p.parse_args()
    if args.cmd == "send":
        sender_main(args)
        return
    if args.cmd in (None, "load"):
        batches = getattr(args, "batch", None)
        shapes = [(b, args.inflight) for b in batches] if batches else [(1, 16), (10, 16), (50, 16), (1, 2), (10, 2)]
        _print_load(load(getattr(args, "alerts", 20000), shapes))
    if args.cmd in (None, "crash"):
        with tempfile.TemporaryDirectory(prefix="aiopsd-crash-") as tmp:
            res = crash(getattr(args, "alerts", 10000), getattr(args, "dup", 0.3), Path(tmp))
        _print_crash(res)
        if res["lost"] or res["ran_twice"] or res["max_runs_per_decision"] > 1:
            sys.exit(1)


if __name__ == "__main__":
    main()
