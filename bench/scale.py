"""Scale benchmarks against a real Prometheus: one daemon at N series, or sharded replicas.

    nice -n 10 python bench/scale.py single [--series 20000] [--interval 15] [--minutes 5]
                                            [--export remote_write|none|metrics] [--lookback 3600]

``single`` (bench/scale_single.py): one ``aiopsd run`` watching N remote-written series of a
noisy seasonal gauge: its CPU, every poll's wall time, the warm-up, RSS per series, the status
API's latency during polls and the size of /metrics, against the targets of issue 16.

    nice -n 10 python bench/scale.py replicas [--series 5000] [--interval 15] [--ttl 30] [--shards 64]
                                              [--window 120] [--detector default] [--label aiopsd_shard]

``replicas`` (bench/scale_replicas.py): sharded detection on a throwaway PostgreSQL, 1 -> 3
replicas on one machine: CPU per series, shard handovers at join, takeover after kill -9, and
an audit of the scoring ledger (no range scored twice, none skipped, no series left unscored).

Both print tables; nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]

from bench.scale_replicas import replicas  # noqa: E402
from bench.scale_single import single  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    one = sub.add_parser("single", help="one daemon, one watch of N series")
    one.add_argument("--series", type=int, default=20_000)
    one.add_argument("--interval", type=float, default=15.0)
    one.add_argument("--lookback", type=float, default=3600.0)
    one.add_argument("--minutes", type=float, default=5.0)
    one.add_argument("--export", choices=["remote_write", "none", "metrics"], default="remote_write")
    one.set_defaults(fn=single)
    r = sub.add_parser("replicas", help="sharded detection: 1 -> 3 replicas, then kill -9 one")
    r.add_argument("--series", type=int, default=5000)
    r.add_argument("--interval", type=float, default=15.0)
    r.add_argument("--ttl", type=float, default=30.0)
    r.add_argument("--shards", type=int, default=64)
    r.add_argument("--lookback", type=float, default=600.0)
    r.add_argument("--window", type=float, default=120.0)
    r.add_argument("--scrape", default="5s", help="Prometheus scrape interval")
    r.add_argument("--detector", default="default")
    r.add_argument(
        "--label",
        default=None,
        help="Prometheus writes each series' shard into this label (hashmod) and the query selects by it",
    )
    r.set_defaults(fn=replicas)
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
