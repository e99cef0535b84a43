"""``aiopsd model approve``: an operator promotes a challenger in shadow now (audited in the state store)."""

from __future__ import annotations

from typing import Annotated

import typer

from aiopsd.cli.common import DEFAULT_CONFIG, ConfigOpt, fail, operator, out
from aiopsd.errors import AiopsdError


def model_approve(
    version: Annotated[int, typer.Argument(help="Version in shadow (or a candidate) to serve now")],
    model: Annotated[str, typer.Option("--model", "-m", help="Prediction log model name")],
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Approve VERSION of MODEL's challenger: it is promoted at once, with you named in the audit log."""
    from aiopsd.cli.ml import open_model_store
    from aiopsd.config import load_settings
    from aiopsd.model_store.approve import approve
    from aiopsd.store import StateStore

    try:
        store = open_model_store(None, config=config, model=model)
        with StateStore(load_settings(config).state_url) as state:
            v = approve(store, version, by=operator(), audit=state.audit, model=model)
    except AiopsdError as exc:
        raise fail(exc) from None
    out.print(f"[green]approved[/]: {store.label} now serves version {v.number}", highlight=False)
