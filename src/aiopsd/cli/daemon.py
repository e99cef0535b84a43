"""``aiopsd run | check | demo | status | db``: the daemon's own commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aiopsd.cli.common import DEFAULT_CONFIG, ConfigOpt, err, fail, out
from aiopsd.errors import AiopsdError


def run(
    config: ConfigOpt = DEFAULT_CONFIG,
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
        raise fail(exc) from None
    raise typer.Exit(code)


def check(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Validate the config file and every rule it points at (exit 0 valid, 2 invalid)."""
    from aiopsd.config import load_settings
    from aiopsd.daemon.http.auth import load_approval_credentials, load_credentials
    from aiopsd.engine import load_rules
    from aiopsd.engine.actions import PlaybookAction

    try:
        settings = load_settings(config)
        rules = load_rules(settings.rules_dir, settings.playbooks_dir, settings.notify_channels)
        load_credentials(settings.webhook.auth)
        load_approval_credentials(settings)
    except AiopsdError as exc:
        raise fail(exc) from None
    for r in rules:
        for where, action in (("action", r.action), ("on_resolved", r.on_resolved)):
            if isinstance(action, PlaybookAction) and action.template_vars:
                err.print(
                    f"[yellow]warning[/]: rule {r.name}: {where}.template_vars "
                    f"({', '.join(sorted(action.template_vars))}) are evaluated by Ansible as templates "
                    "on the control node: keep label data out of them (extra_vars stay literal)"
                )
    out.print(f"[green]ok[/]: {config}: {len(settings.watches)} watches, {len(rules)} rules from {settings.rules_dir}")


def demo(
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds")] = None,
    summary_json: Annotated[Path | None, typer.Option("--summary-json", help="Write a JSON summary")] = None,
    workdir: Annotated[Path | None, typer.Option(help="Keep the demo's files here")] = None,
    port: Annotated[int | None, typer.Option(help="Port for the daemon (default: a free one)")] = None,
    until_done: Annotated[
        bool, typer.Option("--until-done", help="Stop once every incident has been seen and handled")
    ] = False,
    model_store: Annotated[
        str,
        typer.Option(
            "--model-store", help="Keep the churn model in a versioned directory or a real MLflow server (shadow)"
        ),
    ] = "directory",
) -> None:
    """Start a real Prometheus, Alertmanager, a demo workload and the daemon, and narrate."""
    from aiopsd.demo.run import run_demo

    try:
        from aiopsd.demo.models import MODEL_STORES

        if model_store not in MODEL_STORES:
            raise AiopsdError(f"--model-store must be one of {', '.join(MODEL_STORES)}, not {model_store!r}")
        code = run_demo(
            duration=duration,
            summary_json=summary_json,
            workdir=workdir,
            port=port,
            console=out,
            until_done=until_done,
            model_store=model_store,
        )
    except AiopsdError as exc:
        raise fail(exc, 1) from None
    raise typer.Exit(code)


def status(
    url: Annotated[
        str, typer.Option(envvar="AIOPSD_URL", help="Base URL of a running aiopsd")
    ] = "http://127.0.0.1:9797",
) -> None:
    """Show what a running aiopsd saw, did and refused to do (the status page, in the terminal)."""
    from aiopsd.daemon.http.ui.terminal import show

    try:
        show(url, out)
    except AiopsdError as exc:
        raise fail(exc, 1) from None


def db_upgrade(
    config: ConfigOpt = DEFAULT_CONFIG, revision: Annotated[str, typer.Option(help="Target revision")] = "head"
) -> None:
    """Migrate the state store's schema (the daemon also does this when it starts)."""
    from aiopsd.config import load_settings
    from aiopsd.store import StateStore, migrate

    try:
        settings = load_settings(config)
        with StateStore(settings.state_url, create=False) as store:
            before, after = migrate.upgrade(store.engine, revision)
    except AiopsdError as exc:
        raise fail(exc) from None
    except Exception as exc:  # a database error, shown as one line
        raise fail(Exception(f"cannot migrate {settings.state_url}: {str(exc).splitlines()[0]}")) from None
    out.print(f"[green]ok[/]: schema at {after} (was {before or 'empty'})")


def db_current(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Print the schema revision of the state store and the newest one this version knows."""
    from aiopsd.config import load_settings
    from aiopsd.store import StateStore, migrate

    try:
        settings = load_settings(config)
        with StateStore(settings.state_url, create=False) as store:
            rev = migrate.current(store.engine)
    except AiopsdError as exc:
        raise fail(exc) from None
    out.print(f"current: {rev or 'empty'}\nhead: {migrate.head()}")


def register(app: typer.Typer) -> None:
    """Add ``run``, ``check``, ``demo`` and ``status`` to APP."""
    for command in (run, check, demo, status):
        app.command()(command)


def register_db(app: typer.Typer) -> None:
    """Add the ``db`` group (``upgrade``, ``current``) to APP."""
    db_app = typer.Typer(help="State store schema (Alembic migrations, SQLite or PostgreSQL).", no_args_is_help=True)
    db_app.command("upgrade")(db_upgrade)
    db_app.command("current")(db_current)
    app.add_typer(db_app, name="db")
