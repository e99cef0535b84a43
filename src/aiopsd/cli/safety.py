"""CLI commands for the brakes and the paper trail: rules test / restore, approve, circuit reset, audit verify.

Registered on the main ``aiopsd`` app by :func:`register`. Commands that change
state write to the store directly (the daemon need not run), each in one
transaction with its audit entry.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.table import Table

from aiopsd.cli.common import DEFAULT_CONFIG, ConfigOpt, err, fail, operator, out
from aiopsd.errors import AiopsdError

if TYPE_CHECKING:
    from aiopsd.store import StateStore


def rules_test(
    rules_dir: Annotated[Path, typer.Argument(help="Directory of rule YAML files")],
    findings: Annotated[Path, typer.Option("--findings", "-f", help="Fixture YAML of timed findings")],
    fmt: Annotated[Literal["table", "json"], typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Replay fixture findings through the engine offline: every decision (act and skip), verification
    outcome and demotion."""
    from aiopsd.engine import load_rules
    from aiopsd.engine.replay import load_fixture, replay_rows

    try:
        rules = load_rules(rules_dir)
        fixture = load_fixture(findings)
    except AiopsdError as exc:
        raise fail(exc) from None
    rows = replay_rows(rules, fixture)
    if fmt == "json":
        print(json.dumps(rows, indent=2))
        return
    outcomes = sum(1 for r in rows if r["code"] == "verification")
    demoted = sum(1 for r in rows if r["code"] == "demoted")
    loop = f", {outcomes} verification outcomes, {demoted} demotions" if outcomes or demoted else ""
    table = Table(
        title=f"{len(rows) - outcomes - demoted} decisions{loop} from {len(fixture.findings)} finding events, "
        f"{len(rules)} rules"
    )
    for col in ("at", "rule", "finding", "outcome", "code", "targets", "reason"):
        table.add_column(col, overflow="fold")
    for r in rows:
        style = {"act": "green", "verified": "green", "not_verified": "red", "demoted": "red"}.get(
            r["outcome"], "yellow"
        )
        at = datetime.fromisoformat(r["at"]).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            at, r["rule"], r["finding"], f"[{style}]{r['outcome']}[/]", r["code"], ",".join(r["targets"]), r["reason"]
        )
    out.print(table)


def _store(config: Path) -> StateStore:
    from aiopsd.config import load_settings
    from aiopsd.store import StateStore

    settings = load_settings(config)
    return StateStore(settings.state_url)


def approve(
    run_id: Annotated[int, typer.Argument(help="Action run id (see /api/v1/actions)")],
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Approve an action run held as awaiting_approval; the daemon starts it on its next tick."""
    try:
        with _store(config) as store:
            run = store.approve_run(run_id, datetime.now(UTC), by=operator())
            if run is None:
                found = store.get_run(run_id)
                state = f"it is {found.status}" if found else "no such run"
                raise fail(AiopsdError(f"action run {run_id} is not awaiting approval ({state})"), 1)
    except AiopsdError as exc:
        raise fail(exc) from None
    out.print(
        f"[green]approved[/]: action run {run.id} ({run.rule}, {run.kind} on "
        f"{','.join(run.targets) or '-'}) is now {run.status}"
    )


def _on_rule(rule: str, config: Path, act: Callable[[StateStore, str], None]) -> None:
    """Run an operator's ``act`` on RULE in the configured store, once RULE is known to exist."""
    from aiopsd.config import load_settings
    from aiopsd.engine import load_rules
    from aiopsd.store import StateStore

    try:
        settings = load_settings(config)
        names = {r.name for r in load_rules(settings.rules_dir)}
        if rule not in names:
            raise AiopsdError(f"no rule named {rule!r} in {settings.rules_dir}")
        with StateStore(settings.state_url) as store:
            act(store, rule)
    except AiopsdError as exc:
        raise fail(exc) from None


def circuit_reset(rule: Annotated[str, typer.Argument(help="Rule name")], config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Close RULE's circuit breaker: failures so far no longer count."""
    _on_rule(rule, config, lambda store, name: store.reset_circuit(name, datetime.now(UTC), by=operator()))
    out.print(f"[green]reset[/]: circuit of rule {rule} is closed")


def rules_restore(rule: Annotated[str, typer.Argument(help="Rule name")], config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Give RULE back its autonomy after min_success demoted it: its outcomes so far no longer count."""
    _on_rule(rule, config, lambda store, name: store.restore_rule(name, datetime.now(UTC), by=operator()))
    out.print(f"[green]restored[/]: rule {rule} acts without approval again (unless its guards require it)")


def audit_verify(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Check the audit log's hash chain (exit 0 intact, 1 naming the first bad entry)."""
    try:
        with _store(config) as store:
            result = store.verify_audit()
    except AiopsdError as exc:
        raise fail(exc) from None
    if not result.ok:
        err.print(
            f"[bold red]audit log broken[/] at entry {result.first_bad}: {result.problem} "
            f"({result.entries} entries before it are intact)",
            highlight=False,
        )
        raise typer.Exit(1)
    since = (
        ""
        if result.anchored_at is None
        else f" from entry {result.anchored_at} (older entries were removed by retention)"
    )
    out.print(f"[green]ok[/]: audit log intact, {result.entries} entries{since}")


def register(app: typer.Typer) -> None:
    """Add ``rules test``, ``circuit reset``, ``audit verify`` and ``approve`` to APP."""
    rules_app = typer.Typer(no_args_is_help=True, help="Test rule files offline; restore a demoted rule.")
    rules_app.command("test")(rules_test)
    rules_app.command("restore")(rules_restore)
    circuit_app = typer.Typer(no_args_is_help=True, help="Inspect and reset rules' circuit breakers.")
    circuit_app.command("reset")(circuit_reset)
    audit_app = typer.Typer(no_args_is_help=True, help="The hash-chained audit log.")
    audit_app.command("verify")(audit_verify)
    app.add_typer(rules_app, name="rules")
    app.add_typer(circuit_app, name="circuit")
    app.add_typer(audit_app, name="audit")
    app.command()(approve)
