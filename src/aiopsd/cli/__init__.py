"""The ``aiopsd`` command line (typer + rich), split by audience; the only place that prints.

``daemon`` (run, check, demo, status, db), ``safety`` (rules test, approve, circuit, audit),
``maintenance``, ``ml`` (drift, model) and ``backtest``; :func:`create_app` builds the app.
"""

from aiopsd.cli.app import create_app, main

__all__ = ["create_app", "main"]
