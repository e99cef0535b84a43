"""``aiopsd maintenance start | list | stop``: planned work, written to the state store (the daemon need not run).

Registered on the main ``aiopsd`` app by :func:`register`. A window started here is
a one-off window stored in the state DB and audited; windows in the config file
(``maintenance:``) are listed beside them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from aiopsd.cli.common import DEFAULT_CONFIG, ConfigOpt, fail, operator, out
from aiopsd.errors import AiopsdError, ConfigError


def start(
    for_: Annotated[str, typer.Option("--for", help="How long, e.g. 30m, 1h, 2h30m")],
    match: Annotated[
        list[str] | None,
        typer.Option(
            "--match", "-m", help="Label matcher (repeatable): label=value, label!=value, label=~regex, label!~regex"
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Window name (default: cli-<time>)")] = None,
    comment: Annotated[str, typer.Option(help="Why (shown with every skip)")] = "",
    all_findings: Annotated[bool, typer.Option("--all", help="Cover every finding (no --match)")] = False,
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Start a maintenance window now: matching findings are skipped with reason 'maintenance' until it ends."""
    from pydantic import TypeAdapter, ValidationError

    from aiopsd.config import load_settings
    from aiopsd.durations import Duration, format_duration
    from aiopsd.engine.maintenance import MaintenanceWindow, parse_match
    from aiopsd.store import StateStore
    from aiopsd.store.maintenance import add_window

    try:
        try:
            seconds = float(TypeAdapter(Duration).validate_python(for_))
        except ValidationError:
            raise ConfigError(f"--for {for_!r} is not a duration (e.g. 30m, 1h)") from None
        if seconds <= 0:
            raise ConfigError("--for must be longer than 0s")
        labels: dict[str, str] = {}
        for raw in match or []:
            try:
                label, matcher = parse_match(raw)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            labels[label] = matcher
        if not labels and not all_findings:
            raise ConfigError("give at least one --match, or --all to stop remediation of every finding")
        now = datetime.now(UTC)
        window = MaintenanceWindow(
            name=name or f"cli-{now:%Y%m%dT%H%M%SZ}",
            labels=labels,
            start=now,
            end=now + timedelta(seconds=seconds),
            comment=comment,
            created_by=operator(),
        )
        settings = load_settings(config)
        if any(w.name == window.name for w in settings.maintenance):
            raise ConfigError(f"a window named {window.name!r} is in the config; pick another --name")
        with StateStore(settings.state_url) as store:
            stored = add_window(
                store,
                name=window.name,
                labels=labels,
                starts_at=now,
                ends_at=window.end or now,
                now=now,
                comment=comment,
                created_by=window.created_by,
            )
    except ValidationError as exc:
        raise fail(ConfigError(str(exc.errors()[0]["msg"]))) from None
    except AiopsdError as exc:
        raise fail(exc) from None
    what = ", ".join(f"{k}={v}" for k, v in stored.labels.items()) or "every finding"
    out.print(
        f"[green]ok[/]: maintenance {stored.name} until {stored.ends_at:%Y-%m-%d %H:%M:%S}Z "
        f"({format_duration(seconds)}) for {what}",
        highlight=False,
    )


def stop(
    name: Annotated[str, typer.Argument(help="Window name (see `aiopsd maintenance list`)")],
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """End a window started from the CLI now (windows in the config end when the config says)."""
    from aiopsd.config import load_settings
    from aiopsd.store import StateStore
    from aiopsd.store.maintenance import stop_window

    try:
        settings = load_settings(config)
        with StateStore(settings.state_url) as store:
            done = stop_window(store, name, now=datetime.now(UTC), by=operator())
    except AiopsdError as exc:
        raise fail(exc) from None
    if not done:
        raise fail(AiopsdError(f"no active maintenance window named {name!r} in the state store"), 1)
    out.print(f"[green]ok[/]: maintenance {name} ended", highlight=False)


def list_(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Windows from the config and the state store, and whether each is active now."""
    from aiopsd.config import load_settings
    from aiopsd.engine.maintenance import MaintenanceWindow
    from aiopsd.store import StateStore
    from aiopsd.store.maintenance import list_windows

    now = datetime.now(UTC)
    try:
        settings = load_settings(config)
        with StateStore(settings.state_url) as store:
            stored = [MaintenanceWindow(**w.as_window_data()) for w in list_windows(store, now=now)]
    except AiopsdError as exc:
        raise fail(exc) from None
    table = Table("name", "from", "when", "matches", "active now", "comment")
    for origin, windows in (("config", settings.maintenance), ("cli", stored)):
        for w in windows:
            occ = w.occurrence(now)
            when = f"cron {w.cron} +{w.duration:g}s" if w.cron else f"{w.start:%m-%d %H:%M}Z..{w.end:%m-%d %H:%M}Z"
            table.add_row(
                w.name,
                origin,
                when,
                ", ".join(f"{k}={v}" for k, v in w.labels.items()) or "*",
                f"until {occ[1]:%H:%M:%S}Z" if occ else "no",
                w.comment,
            )
    out.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``maintenance`` group (``start``, ``list``, ``stop``) to APP."""
    maintenance_app = typer.Typer(
        no_args_is_help=True, help="Maintenance windows: no remediation for matching findings while one is active."
    )
    maintenance_app.command("start")(start)
    maintenance_app.command("stop")(stop)
    maintenance_app.command("list")(list_)
    app.add_typer(maintenance_app, name="maintenance")
