"""HA on PostgreSQL: leader takeover time and webhook throughput with one and three replicas.

Starts a throwaway PostgreSQL cluster and real ``aiopsd run`` processes on loopback.
Takeover: kill -9 (and, separately, SIGTERM) the leader and time until another replica
reports ``leader: true`` on its status API. Throughput: Alertmanager-style webhook posts
(one alert each, distinct fingerprints) from a pool of clients spread over the replicas;
every 2xx means the alert is committed to PostgreSQL.

    python bench/ha.py [--alerts 1500] [--clients 12] [--ttl 5] [--trials 3]
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

# This checkout's code and its tests.support helpers, whatever aiopsd the venv has installed.
REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]

from tests.support import DaemonProcess, alert, payload, start_daemon, write_config  # noqa: E402

from aiopsd.demo.postgres import running_postgres  # noqa: E402


def start(root: Path, name: str, url: str, ttl: float) -> DaemonProcess:
    work = root / name
    (work / "rules").mkdir(parents=True)
    cfg = write_config(work, state_url=url, ha={"lease_ttl": f"{ttl}s"}, log_level="WARNING")
    return start_daemon(cfg)


def leader(replicas: list[DaemonProcess]) -> DaemonProcess | None:
    for d in replicas:
        if d.proc.poll() is None:
            try:
                if httpx.get(f"{d.url}/api/v1/status", timeout=2).json()["leader"]:
                    return d
            except httpx.HTTPError:
                continue
    return None


def takeover(replicas: list[DaemonProcess], sig: int) -> float:
    old = leader(replicas)
    while old is None:
        time.sleep(0.05)
        old = leader(replicas)
    t0 = time.monotonic()
    old.proc.send_signal(sig)
    rest = [d for d in replicas if d is not old]
    while True:
        new = leader(rest)
        if new is not None:
            took = time.monotonic() - t0
            break
        time.sleep(0.02)
    old.proc.wait(60)
    replicas.remove(old)
    return took


def throughput(replicas: list[DaemonProcess], n: int, clients: int, tag: str) -> tuple[float, float, float, int]:
    latencies: list[float] = []
    errors = 0
    http = [httpx.Client(base_url=d.url, timeout=30) for d in replicas]

    def send(i: int) -> float | None:
        body = payload(alert(fingerprint=f"{tag}-{i}", instance=f"host-{i % 50}"))
        t = time.perf_counter()
        r = http[i % len(http)].post("/api/v1/alerts", json=body)
        return time.perf_counter() - t if r.status_code == 200 else None

    # Warm up connections and the database.
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(send, range(-clients * 2, 0)))
        t0 = time.perf_counter()
        for lat in pool.map(send, range(n)):
            if lat is None:
                errors += 1
            else:
                latencies.append(lat)
        wall = time.perf_counter() - t0
    for c in http:
        c.close()
    q = statistics.quantiles(latencies, n=100)
    return len(latencies) / wall, q[49] * 1000, q[98] * 1000, errors


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=1500)
    ap.add_argument("--clients", type=int, default=12)
    ap.add_argument("--ttl", type=float, default=5.0)
    ap.add_argument("--trials", type=int, default=3)
    args = ap.parse_args()

    rows: list[tuple[int, float, float, float, int]] = []
    kill9: list[float] = []
    term: list[float] = []
    with tempfile.TemporaryDirectory(prefix="aiopsd-bench-ha-") as tmp:
        root = Path(tmp)
        for n in (1, 3):
            with running_postgres() as pg:
                replicas = [start(root, f"tp{n}-{i}", pg.url, args.ttl) for i in range(n)]
                try:
                    rate, p50, p99, errors = throughput(replicas, args.alerts, args.clients, f"r{n}")
                    rows.append((n, rate, p50, p99, errors))
                finally:
                    for d in replicas:
                        d.stop()
        with running_postgres() as pg:
            replicas = [start(root, f"ha-{i}", pg.url, args.ttl) for i in range(3)]
            spawned = 3
            try:
                for trial in range(args.trials):
                    for sig, out in ((signal.SIGKILL, kill9), (signal.SIGTERM, term)):
                        out.append(takeover(replicas, sig))
                        replicas.append(start(root, f"ha-{spawned}", pg.url, args.ttl))
                        spawned += 1
                    print(f"trial {trial + 1}: kill -9 {kill9[-1]:.2f}s, SIGTERM {term[-1]:.2f}s", file=sys.stderr)
            finally:
                for d in replicas:
                    d.stop()

    cores = len(__import__("os").sched_getaffinity(0))
    print(
        f"\nWebhook throughput on one PostgreSQL ({args.alerts} alerts, {args.clients} clients, "
        f"one alert per request, {cores} CPU cores shared by clients, replicas and PostgreSQL)\n"
    )
    print(f"| {'replicas':>8} | {'alerts/s':>8} | {'p50 ms':>7} | {'p99 ms':>7} | {'non-2xx':>7} |")
    print(f"|{'-' * 10}|{'-' * 10}|{'-' * 9}|{'-' * 9}|{'-' * 9}|")
    for n, rate, p50, p99, errors in rows:
        print(f"| {n:>8} | {rate:>8.0f} | {p50:>7.1f} | {p99:>7.1f} | {errors:>7} |")
    print(
        f"\nLeader takeover, lease_ttl {args.ttl:g}s (renewed every {args.ttl / 3:.2f}s), {args.trials} trials, "
        "time from the signal until a follower reports leader\n"
    )
    print(f"| {'leader stopped by':<17} | {'min s':>6} | {'median s':>8} | {'max s':>6} |")
    print(f"|{'-' * 19}|{'-' * 8}|{'-' * 10}|{'-' * 8}|")
    for label, values in (("kill -9", kill9), ("SIGTERM (drain)", term)):
        print(f"| {label:<17} | {min(values):>6.2f} | {statistics.median(values):>8.2f} | {max(values):>6.2f} |")


if __name__ == "__main__":
    main()
