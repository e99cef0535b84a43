"""``bench/scale.py replicas``: sharded detection, 1 -> 3 replicas on one machine.

Against a throwaway PostgreSQL and a real Prometheus scraping ``--series`` gauges, it starts one
``aiopsd run`` with ``sharding.enabled`` and measures its CPU over ``--window`` seconds of
steady polling; starts two more (they join: the shards rebalance) and measures the three; then
kill -9s the replica holding the most shards and measures how long until every one of its
shards is scored again by a survivor. The scoring ledger (``shard_ledger``) is audited over the
whole run: a range of a shard scored by two replicas, a range nobody scored, and a ledger row
that scored fewer series than the shard has (a series left unscored) are counted.
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import time
from pathlib import Path

from tests.sharding import audit, series_by_shard, sharded_config
from tests.support import DaemonProcess, start_daemon

from aiopsd.store import StateStore
from aiopsd.store.shards import assignment, holders, ledger
from bench.scale_support import Stack, cpu_seconds, scale_stack, table, wait


def _start(root: Path, name: str, st: Stack, args: argparse.Namespace) -> DaemonProcess:
    cfg = sharded_config(
        root / name,
        state_url=st.pg_url,
        prometheus_url=st.prometheus_url,
        shards=args.shards,
        ttl=args.ttl,
        interval=args.interval,
        lookback=args.lookback,
        detector=args.detector,
        label=args.label,
    )
    return start_daemon(cfg, ready_timeout=120)


def _name_of(store: StateStore, d: DaemonProcess) -> str | None:
    """The replica identity (hostname:pid:nonce) of a daemon process, from its membership row."""
    from sqlalchemy import select

    from aiopsd.store import tables as t

    with store.read() as conn:
        names = [str(n) for n in conn.execute(select(t.shard_members.c.name)).scalars()]
    return next((n for n in names if n.split(":")[-2] == str(d.proc.pid)), None)


def _steady(store: StateStore, names: set[str], since: float, polls: int) -> bool:
    """Each of ``names`` committed at least ``polls`` polls after ``since``."""
    done: dict[str, set[float]] = {}
    for r in ledger(store, "demo"):
        if r["at"] > since:
            done.setdefault(str(r["holder"]), set()).add(float(r["until"]))
    return all(len(done.get(n, ())) >= polls for n in names)


def _moves(rows: list[dict[str, object]]) -> int:
    """Handovers in the ledger: consecutive scored ranges of a shard by different replicas."""
    last: dict[object, object] = {}
    moves = 0
    for r in sorted(rows, key=lambda r: float(str(r["since"]))):
        if last.get(r["shard"], r["holder"]) != r["holder"]:
            moves += 1
        last[r["shard"]] = r["holder"]
    return moves


def _cpu(procs: list[DaemonProcess], window: float) -> float:
    """CPU seconds per second (cores) the processes use together over ``window`` seconds."""
    before = [cpu_seconds(d.proc.pid) for d in procs]
    t0 = time.monotonic()
    time.sleep(window)
    used = sum(cpu_seconds(d.proc.pid) - b for d, b in zip(procs, before, strict=True))
    return float(used / (time.monotonic() - t0))


def replicas(args: argparse.Namespace) -> None:
    n, shards = args.series, args.shards
    with (
        tempfile.TemporaryDirectory(prefix="aiopsd-bench-scale-") as tmp,
        scale_stack(Path(tmp), n, args.scrape, shards, args.label) as st,
    ):
        root = Path(tmp)
        wait(lambda: sum(series_by_shard(st.prometheus_url, shards, args.label).values()) == n, 120, "the first scrape")
        expected = series_by_shard(st.prometheus_url, shards, args.label)
        store = StateStore(st.pg_url)
        procs: list[DaemonProcess] = []
        try:
            t_start = time.time()
            procs.append(_start(root, "r1", st, args))
            r1 = wait(lambda: _name_of(store, procs[0]), 60, "replica 1 to join")
            wait(lambda: _steady(store, {str(r1)}, t_start, 2), 10 * args.interval + 300, "replica 1 to score")
            one = _cpu(procs, args.window)

            procs += [_start(root, f"r{i}", st, args) for i in (2, 3)]
            names = {str(wait(lambda d=d: _name_of(store, d), 60, "a replica to join")) for d in procs}

            target = assignment(shards, sorted(names))
            wait(lambda: holders(store) == target, 10 * args.ttl, "the shards to spread over three replicas")
            # Joining one after the other, the fewest handovers: those of r1 -> {r1, r2}, then of -> {r1, r2, r3}.
            order = [str(_name_of(store, d)) for d in procs]
            two = assignment(shards, order[:2])
            ideal = sum(1 for o in two.values() if o != r1) + sum(1 for s in target if target[s] != two[s])
            t_spread = time.time()
            wait(lambda: _steady(store, names, t_spread, 2), 10 * args.interval + 300, "three replicas to score")
            three = _cpu(procs, args.window)
            held = holders(store)

            victim = max(names, key=lambda nm: sum(1 for h in held.values() if h == nm))
            lost = {s for s, h in held.items() if h == victim}
            [vproc] = [d for d in procs if _name_of(store, d) == victim]
            vproc.stop(signal.SIGKILL)
            killed = time.time()

            def taken() -> dict[int, float] | None:
                first: dict[int, float] = {}
                for r in ledger(store, "demo"):
                    if r["shard"] in lost and r["at"] > killed and r["holder"] != victim:
                        first.setdefault(int(r["shard"]), float(r["at"]))
                return first if set(first) == lost else None

            first = wait(taken, 4 * args.ttl + 4 * args.interval + 120, "the killed replica's shards", 0.2)
            assert isinstance(first, dict)
            takeover = max(first.values()) - killed
            moved = _moves([r for r in ledger(store, "demo") if r["at"] < killed])
            t_after = time.time()
            survivors = names - {victim}
            wait(lambda: _steady(store, survivors, t_after, 2), 10 * args.interval + 120, "survivors to score on")
            result = audit(ledger(store, "demo"), expected, step=args.interval, after=t_start)
            unscored_after = sum(
                exp - sc for shard, until, sc, exp in result.short_rows if shard in lost and until > killed
            )
            unscored_after += sum(expected.get(s, 0) for s in lost - set(first))
        finally:
            for d in procs:
                d.stop()
            store.close()

    def per_k(cores: float) -> str:
        return f"{100 * cores / n * 1000:.2f}"

    rows = [
        ["1", f"{100 * one:.1f}", per_k(one), "1.00"],
        ["3", f"{100 * three:.1f}", per_k(three), f"{three / one:.2f}"],
    ]
    where = f"in the query (label {args.label})" if args.label else "after the fetch"
    title = (
        f"Sharded detection, {n} series of one watch ({args.detector}), shard selection {where}, "
        f"interval {args.interval:g}s, {shards} shards, lease_ttl {args.ttl:g}s, one machine "
        f"({len(os.sched_getaffinity(0))} cores shared with Prometheus and PostgreSQL); "
        f"CPU over {args.window:g}s of steady polling"
    )
    print()
    print(
        table(
            title,
            ["replicas", "CPU % of a core (all replicas)", "% core per 1k series", "CPU per series vs 1 replica"],
            rows,
        )
    )
    print()
    print(
        table(
            f"Join and kill -9 (target: takeover <= lease_ttl + one interval = {args.ttl + args.interval:g}s, 0, 0)",
            [
                "shard handovers at join (fewest possible)",
                "takeover after kill -9 s",
                "series scored twice",
                "unscored after takeover",
                "ledger holes",
            ],
            [
                [
                    f"{moved} ({ideal})",
                    f"{takeover:.1f}",
                    str(result.series_scored_twice),
                    str(unscored_after),
                    str(len(result.holes)),
                ]
            ],
        )
    )
    print(f"\nthe killed replica held {len(lost)} shards; overlaps {result.overlaps[:5]}, holes {result.holes[:5]}")
