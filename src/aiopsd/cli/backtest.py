"""``aiopsd backtest``: the typer command, added to the main app by :func:`register`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import track
from rich.table import Table

from aiopsd.cli.common import fail, out
from aiopsd.errors import AiopsdError

if TYPE_CHECKING:  # pandas-heavy modules load only when the command runs: `aiopsd --help` stays fast
    from aiopsd.backtest.runner import ProfileScore


def render_table(rows: list[ProfileScore], title: str) -> Table:
    """A rich table: one row per NAB profile, own threshold and optimised threshold."""
    table = Table(title=title)
    table.add_column("profile", no_wrap=True)
    for col in ("own (>= 1)", "TP/FP/FN", "optimised", "threshold", "TP/FP/FN"):
        table.add_column(col, justify="right")
    for row in rows:
        own, best = row.own, row.optimised
        table.add_row(
            own.profile,
            f"{own.score:.1f}",
            f"{own.tp}/{own.fp}/{own.fn}",
            f"{best.score:.1f}",
            f"{best.threshold:.3g}",
            f"{best.tp}/{best.fp}/{best.fn}",
        )
    return table


def backtest(
    detector: Annotated[str, typer.Option("--detector", help="Detector registry name, e.g. default.")],
    input: Annotated[list[Path], typer.Option("--input", help="CSV file or folder (recursive); repeatable.")],
    output: Annotated[Path, typer.Option("--output", help="Folder for <relative path>.csv with scores.")],
    windows: Annotated[Path | None, typer.Option("--windows", help="NAB labels JSON; prints NAB scores.")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Folder for one PNG chart per series.")] = None,
) -> None:
    """Stream CSV series (timestamp,value) through a detector causally and write their scores."""
    try:
        from aiopsd.backtest.data import read_windows
        from aiopsd.backtest.runner import backtest as run_backtest
        from aiopsd.backtest.runner import nab_table

        labels = read_windows(windows) if windows else None

        def progress(items: list[tuple[Path, Path]]) -> Iterable[tuple[Path, Path]]:
            if not out.is_terminal:
                return items
            return track(items, description="scoring", console=out)

        results = run_backtest(detector, input, output, labels, progress)
    except (AiopsdError, ValueError) as exc:
        raise fail(exc) from exc
    out.print(f"scored {len(results)} series with {detector!r}; scores in {output}")
    if plot is not None:
        from aiopsd.backtest.plot import plot_series

        for result in results:
            plot_series(result, plot / result.series.relative.with_suffix(".png"))
        out.print(f"charts in {plot}")
    if labels is not None:
        labelled = [r for r in results if r.labels is not None]
        if not labelled:
            out.print("[yellow]no series matched a key of the windows file[/yellow]")
            return
        out.print(render_table(nab_table(labelled), f"NAB scores, {detector}, {len(labelled)} series"))


def register(app: typer.Typer) -> None:
    """Add ``backtest`` to APP."""
    app.command("backtest")(backtest)
