"""Webhook load and crash benchmark against a real daemon on SQLite, load generated from other processes.

    python bench/webhook.py                 # compare, load table, then the kill -9 crash run
    python bench/webhook.py --with-eda      # the same, with Event-Driven Ansible in the compare table
    python bench/webhook.py compare --with-eda [--eda-collection PATH] [--rounds 2]
    python bench/webhook.py load --alerts 20000
    python bench/webhook.py crash --alerts 10000 --dup 0.3

``compare``: the intake target's shape (one alert per request, 16 in flight, 30 %
of the alerts delivered a second time about 37 requests later) against a fresh
aiopsd and, with ``--with-eda``, against ansible-rulebook 1.3.2 with the
ansible.eda alertmanager source (installed into a throwaway venv by
bench/webhook_eda.py), back to back and alternating for ``--rounds`` rounds, with
the same sender (bench/webhook_send.py). It prints one table, side by side.

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
import json
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

if __package__ in (None, ""):  # run as ``python bench/webhook.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.webhook_compare import compare, print_compare
from bench.webhook_daemon import start_daemon, stop, stored_fingerprints
from bench.webhook_send import ACT_EVERY, _env, free_port, pct, spawn_sender


# ------------------------------------------------------------------------------- load
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
                stored = stored_fingerprints(work)
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
    stored = stored_fingerprints(workdir)
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
    p.add_argument("--with-eda", action="store_true", help="compare against Event-Driven Ansible too")
    p.add_argument("--eda-collection", type=Path, help="ansible.eda tarball or source checkout (no Galaxy)")
    p.add_argument("--rounds", type=int, default=2, help="compare rounds (EDA then aiopsd in each)")
    sub = p.add_subparsers(dest="cmd")
    sub.add_parser("compare")
    lp = sub.add_parser("load")
    lp.add_argument("--alerts", type=int, default=20000)
    lp.add_argument("--batch", type=int, action="append", help="alerts per request (repeatable)")
    lp.add_argument("--inflight", type=int, default=16)
    cp = sub.add_parser("crash")
    cp.add_argument("--alerts", type=int, default=10000)
    cp.add_argument("--dup", type=float, default=0.3)
    args = p.parse_args()
    if args.cmd in (None, "compare"):
        print_compare(*compare(with_eda=args.with_eda, collection=args.eda_collection, rounds=args.rounds))
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
