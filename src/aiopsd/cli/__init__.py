"""The ``aiopsd`` command line (typer + rich). The only place that prints."""

from aiopsd.cli.daemon import app, main

__all__ = ["app", "main"]
