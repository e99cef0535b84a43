"""Two replicas on one PostgreSQL watch one prediction log: only the leader reads it, and a new
leader continues from the shared cursor (no row read twice, none skipped)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import numpy as np

from aiopsd.demo.postgres import Postgres
from tests.support import DaemonProcess, start_daemon, wait_for, write_config

BAD_ROWS = re.compile(r'^aiopsd_prediction_log_bad_rows_total\{model="m"\} (\S+)$', re.M)


def _bad_rows(d: DaemonProcess) -> float:
    m = BAD_ROWS.search(httpx.get(f"{d.url}/metrics", timeout=10).text)
    return float(m.group(1)) if m else 0.0


def _rows(log: Path, start: int, n: int) -> None:
    rng = np.random.default_rng(start)
    with log.open("a") as fh:
        for i in range(start, start + n):
            fh.write(
                json.dumps(
                    {
                        "timestamp": 1_700_000_000 + i,
                        "model": "m",
                        "prediction": int(i % 2),
                        "features": {"x": float(rng.normal())},
                    }
                )
                + "\n"
            )
        fh.write("{bad row\n")


def test_only_the_leader_tails_and_a_new_leader_continues_from_the_shared_cursor(
    tmp_path: Path, postgres: Postgres
) -> None:
    log = tmp_path / "m.jsonl"
    ref = tmp_path / "ref.csv"
    rng = np.random.default_rng(0)
    ref.write_text("x,prediction\n" + "".join(f"{rng.normal()},{i % 2}\n" for i in range(200)))
    log.touch()
    replicas: dict[str, DaemonProcess] = {}
    try:
        for name in ("a", "b"):
            work = tmp_path / name
            (work / "rules").mkdir(parents=True)
            cfg = write_config(
                work,
                state_url=postgres.url,
                ha={"lease_ttl": "3s"},
                prediction_logs=[
                    {
                        "model": "m",
                        "path": str(log),
                        "reference": str(ref),
                        "window": {"rows": 20},
                        "interval": "1s",
                        "reports": False,
                    }
                ],
            )
            replicas[name] = start_daemon(cfg)
        leader = wait_for(
            lambda: next((n for n, d in replicas.items() if d.get("/api/v1/status")["leader"]), None),
            30,
            what="a leader",
        )
        follower = "b" if leader == "a" else "a"
        _rows(log, 0, 40)  # written once both replicas are polling
        wait_for(lambda: _bad_rows(replicas[leader]) == 1.0, 30, what="the leader to read the log")
        assert _bad_rows(replicas[follower]) == 0.0, "a follower does not read prediction logs"
        assert "skipping bad row" not in replicas[follower].log_text()

        replicas[leader].stop()
        wait_for(lambda: replicas[follower].get("/api/v1/status")["leader"], 30, what="the follower to lead")
        _rows(log, 40, 20)
        wait_for(lambda: _bad_rows(replicas[follower]) >= 1.0, 30, what="the new leader to read the log")
        wait_for(lambda: "skipping bad row" in replicas[follower].log_text(), 10)
        assert replicas[follower].log_text().count("skipping bad row") == 1, (
            "the new leader continues after the old leader's cursor: the first bad row is not read again"
        )
        assert f"{log}:62" in replicas[follower].log_text()
    finally:
        for d in replicas.values():
            d.stop()
