"""The ``aiopsd`` command line (typer + rich). The only place that prints."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from aiopsd import __version__
from aiopsd.errors import AiopsdError

app = typer.Typer(name="aiopsd", no_args_is_help=True, add_completion=False,
                  help="AIOps daemon: anomaly and drift detection, Alertmanager webhooks, guarded remediation.")
err = Console(stderr=True)
out = Console()

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="YAML config file", exists=False)]


def _fail(exc: Exception, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {exc}", highlight=False)
    return typer.Exit(code)


@app.callback(invoke_without_command=True)
def _root(ctx: typer.Context,
          version: Annotated[bool, typer.Option("--version", help="Print the version and exit")] = False) -> None:
    if version:
        out.print(__version__)
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        out.print(ctx.get_help())
        raise typer.Exit(2)


@app.command()
def run(config: ConfigOpt = Path("aiopsd.yaml"),
        listen: Annotated[str | None, typer.Option(help="HOST:PORT to serve on (overrides the file)")] = None,
        ) -> None:
    """Run the daemon: poll, detect, receive webhooks, decide and act."""
    from aiopsd.config import load_settings
    from aiopsd.daemon.logs import setup_logging
    from aiopsd.daemon.service import run_daemon

    try:
        settings = load_settings(config, listen=listen)
        setup_logging(settings.log_level, settings.log_format)
        code = run_daemon(settings, str(config))
    except AiopsdError as exc:
        raise _fail(exc) from None
    raise typer.Exit(code)


@app.command()
def check(config: ConfigOpt = Path("aiopsd.yaml")) -> None:
    """Validate the config file and every rule it points at (exit 0 valid, 2 invalid)."""
    from aiopsd.config import load_settings
    from aiopsd.daemon.auth import load_approval_credentials, load_credentials
    from aiopsd.engine import load_rules
    from aiopsd.engine.rules import PlaybookAction

    try:
        settings = load_settings(config)
        rules = load_rules(settings.rules_dir, settings.playbooks_dir, settings.notify_channels)
        load_credentials(settings.webhook.auth)
        load_approval_credentials(settings)
    except AiopsdError as exc:
        raise _fail(exc) from None
    for r in rules:
        for where, action in (("action", r.action), ("on_resolved", r.on_resolved)):
            if isinstance(action, PlaybookAction) and action.template_vars:
                err.print(f"[yellow]warning[/]: rule {r.name}: {where}.template_vars "
                          f"({', '.join(sorted(action.template_vars))}) are evaluated by Ansible as templates "
                          "on the control node: keep label data out of them (extra_vars stay literal)")
    out.print(f"[green]ok[/]: {config}: {len(settings.watches)} watches, {len(rules)} rules "
              f"from {settings.rules_dir}")


@app.command()
def demo(duration: Annotated[float | None, typer.Option(help="Stop after this many seconds")] = None,
         summary_json: Annotated[Path | None, typer.Option("--summary-json", help="Write a JSON summary")] = None,
         workdir: Annotated[Path | None, typer.Option(help="Keep the demo's files here")] = None,
         port: Annotated[int | None, typer.Option(help="Port for the daemon (default: a free one)")] = None,
         ) -> None:
    """Start a real Prometheus, Alertmanager, a demo workload and the daemon, and narrate."""
    from aiopsd.demo.run import run_demo

    try:
        code = run_demo(duration=duration, summary_json=summary_json, workdir=workdir, port=port, console=out)
    except AiopsdError as exc:
        raise _fail(exc, 1) from None
    raise typer.Exit(code)


@app.command()
def status(url: Annotated[str, typer.Option(envvar="AIOPSD_URL", help="Base URL of a running aiopsd")]
           = "http://127.0.0.1:9797") -> None:
    """Show what a running aiopsd saw, did and refused to do (the status page, in the terminal)."""
    from aiopsd.daemon.ui.terminal import show

    try:
        show(url, out)
    except AiopsdError as exc:
        raise _fail(exc, 1) from None


def _register_subcommands() -> None:
    from aiopsd.backtest.command import backtest
    from aiopsd.ml_cli import drift_app, model_app

    app.command("backtest")(backtest)
    app.add_typer(drift_app, name="drift", help="Offline drift checks of CSV files against a reference.")
    app.add_typer(model_app, name="model", help="Versioned model directories: list, promote, rollback.")


_register_subcommands()


def _register_safety() -> None:
    from aiopsd.cli_safety import register

    register(app)


_register_safety()


def _register_maintenance() -> None:
    from aiopsd.cli_maintenance import register

    register(app)


_register_maintenance()


db_app = typer.Typer(help="State store schema (Alembic migrations, SQLite or PostgreSQL).", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = Path("aiopsd.yaml"),
               revision: Annotated[str, typer.Option(help="Target revision")] = "head") -> None:
    """Migrate the state store's schema (the daemon also does this when it starts)."""
    from aiopsd.config import load_settings
    from aiopsd.store import StateStore, migrate

    try:
        settings = load_settings(config)
        with StateStore(settings.state_url, create=False) as store:
            before, after = migrate.upgrade(store.engine, revision)
    except AiopsdError as exc:
        raise _fail(exc) from None
    except Exception as exc:  # a database error, shown as one line
        raise _fail(Exception(f"cannot migrate {settings.state_url}: {str(exc).splitlines()[0]}")) from None
    out.print(f"[green]ok[/]: schema at {after} (was {before or 'empty'})")


@db_app.command("current")
def db_current(config: ConfigOpt = Path("aiopsd.yaml")) -> None:
    """Print the schema revision of the state store and the newest one this version knows."""
    from aiopsd.config import load_settings
    from aiopsd.store import StateStore, migrate

    try:
        settings = load_settings(config)
        with StateStore(settings.state_url, create=False) as store:
            rev = migrate.current(store.engine)
    except AiopsdError as exc:
        raise _fail(exc) from None
    out.print(f"current: {rev or 'empty'}\nhead: {migrate.head()}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
