"""The ``aiopsd`` typer app, built by :func:`create_app` from the command modules; :func:`main` runs it."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from aiopsd import __version__
from aiopsd.cli import backtest, daemon, maintenance, ml, safety
from aiopsd.cli.common import out


def _root(
    ctx: typer.Context, version: Annotated[bool, typer.Option("--version", help="Print the version and exit")] = False
) -> None:
    if version:
        out.print(__version__)
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        out.print(ctx.get_help())
        raise typer.Exit(2)


def create_app() -> typer.Typer:
    """A new ``aiopsd`` app with every command: daemon, backtest, drift and model, safety, maintenance, db."""
    app = typer.Typer(
        name="aiopsd",
        no_args_is_help=True,
        add_completion=False,
        help="AIOps daemon: anomaly and drift detection, Alertmanager webhooks, guarded remediation.",
    )
    app.callback(invoke_without_command=True)(_root)
    daemon.register(app)
    backtest.register(app)
    ml.register(app)
    safety.register(app)
    maintenance.register(app)
    daemon.register_db(app)
    return app


def main() -> None:
    try:
        create_app()()
    except KeyboardInterrupt:
        sys.exit(130)
