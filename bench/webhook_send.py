"""The webhook bench's load generator: Alertmanager v4 payloads posted from their own process.

    python bench/webhook_send.py --url http://127.0.0.1:9797/api/v1/alerts --run r1 --alerts 5000 --out res.json

A minimal HTTP/1.1 keep-alive client on asyncio streams with a fixed number of
requests in flight; it writes the status codes, latencies and elapsed time as JSON.
``--redeliver 0.3`` also re-sends 30 % of the alerts about 37 requests after their
first delivery (what Alertmanager does on its repeat interval or an HA pair does).
The same sender drives aiopsd and Event-Driven Ansible (bench/webhook_eda.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

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


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    sp = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    sender_main(sp.parse_args())


if __name__ == "__main__":
    main()
