"""What every ``aiopsd`` command shares: the console pair, ``--config``, one error exit, the operator name."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

out = Console()
err = Console(stderr=True)

DEFAULT_CONFIG = Path("aiopsd.yaml")
ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="YAML config file", exists=False)]


def fail(exc: Exception | str, code: int = 2) -> typer.Exit:
    """Print ``error: <exc>`` on stderr and return the exit to raise (2: bad input, 1: refused)."""
    # escape: the message may quote a file's or a payload's text, which is not rich markup;
    # soft_wrap: a long path stays one piece that can be copied, whatever the terminal's width.
    err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def operator() -> str:
    """Who ran the command, for the audit log."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"
