"""log_format: json gives one JSON object per line, including uvicorn's and APScheduler's records."""

from __future__ import annotations

import json
import logging

import pytest

from aiopsd.daemon.logs import setup_logging


def test_json_lines_from_our_and_library_loggers(capsys: pytest.CaptureFixture[str]) -> None:
    # uvicorn may have installed its own handler on its loggers: ours must replace it.
    logging.getLogger("uvicorn.error").addHandler(logging.StreamHandler())
    setup_logging("INFO", "json")
    try:
        logging.getLogger("aiopsd.daemon.service").info("reloaded: %d rules", 3)
        logging.getLogger("uvicorn.error").error("port in use")
        logging.getLogger("apscheduler.scheduler").warning("job missed")
        logging.getLogger("apscheduler.scheduler").info("too chatty")  # libraries stay at WARNING
        lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    finally:
        setup_logging("INFO", "text")
    records = [json.loads(ln) for ln in lines]
    assert [(r["logger"], r["level"], r["msg"]) for r in records] == [
        ("aiopsd.daemon.service", "INFO", "reloaded: 3 rules"),
        ("uvicorn.error", "ERROR", "port in use"),
        ("apscheduler.scheduler", "WARNING", "job missed"),
    ]
    assert all(r["ts"].endswith("+00:00") for r in records)
