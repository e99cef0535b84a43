"""``aiopsd drift ...`` and ``aiopsd model ...``: typer sub-apps registered by :mod:`aiopsd.cli`."""

from __future__ import annotations

import json
import math
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from aiopsd.errors import AiopsdError

if TYPE_CHECKING:  # pandas loads only when a command runs: `aiopsd --help` stays fast
    import pandas as pd

    from aiopsd.detectors.drift import DriftResult

drift_app = typer.Typer(no_args_is_help=True, add_completion=False,
                        help="Test data files for drift against a reference.")
model_app = typer.Typer(no_args_is_help=True, add_completion=False,
                        help="List, promote and roll back versions in a model directory.")
out = Console()
err = Console(stderr=True)


class Format(StrEnum):
    JSON = "json"
    TABLE = "table"


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(2)


def read_table(path: Path) -> pd.DataFrame:
    """A CSV, JSONL or Parquet file as a data frame; a clear error when it cannot be read."""
    import pandas as pd

    try:
        suffix = path.suffix.lower()
        if suffix in {".parquet", ".pq"}:
            return pd.read_parquet(path)
        if suffix in {".jsonl", ".ndjson"}:
            return pd.read_json(path, lines=True)
        return pd.read_csv(path)
    except FileNotFoundError:
        raise AiopsdError(f"{path} does not exist; pass an existing CSV, JSONL or Parquet file") from None
    except (OSError, ValueError) as exc:
        raise AiopsdError(f"cannot read {path} as a table ({exc}); check its format") from None


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def _line(path: Path, res: DriftResult) -> dict[str, Any]:
    line: dict[str, Any] = {"current": str(path), "drift": res.drift, "columns": {
        name: {"test": c.test, "statistic": _num(c.statistic), "p_value": _num(c.p_value), "psi": _num(c.psi),
               "drift": c.drift} for name, c in res.columns.items()}}
    if res.performance is not None:
        p = res.performance
        line["performance"] = {"test": p.test, "statistic": _num(p.statistic), "p_value": _num(p.p_value),
                               "drift": p.drift, "reference": p.reference, "window": p.window}
    return line


def _table(path: Path, res: DriftResult) -> Table:
    verdict = "[bold red]DRIFT[/]" if res.drift else "[green]no drift[/]"
    t = Table(title=f"{path}: {verdict} ({res.rows} rows, alpha {res.alpha:g}, weighted Bonferroni)")
    for col in ("column", "test", "statistic", "p (adjusted)", "PSI", "missing ref→win", "drift"):
        t.add_column(col, justify="left" if col in {"column", "test"} else "right")

    def f(x: float | None, spec: str = ".3g") -> str:
        return "-" if x is None or not math.isfinite(x) else format(x, spec)

    for name, c in res.columns.items():
        t.add_row(name + (" (prediction)" if c.role == "prediction" else ""), c.test, f(c.statistic),
                  f(c.p_value), f(c.psi), f"{c.missing_rate_reference:.1%}→{c.missing_rate_window:.1%}",
                  "[bold red]yes[/]" if c.drift else "no")
    if res.performance is not None:
        p = res.performance
        t.add_row("(performance)", p.test, f(p.statistic), f(p.p_value), "-",
                  ", ".join(f"{k} {p.reference.get(k, math.nan):.3g}→{v:.3g}" for k, v in p.window.items()),
                  "[bold red]yes[/]" if p.drift else "no")
    return t


@drift_app.callback()
def _drift_group() -> None:
    """Test data files for drift against a reference."""  # keeps `drift check` a sub-command


CategoricalOpt = Annotated[list[str] | None, typer.Option(help="Treat this numeric column as categorical")]
FormatOpt = Annotated[Format, typer.Option("--format", help="json: one line per file; table: rich")]


@drift_app.command("check")
def drift_check(
    current: Annotated[list[Path], typer.Argument(help="Current data file(s): CSV, JSONL or Parquet")],
    reference: Annotated[Path, typer.Option("--reference", "-r", help="Reference data file")],
    fmt: FormatOpt = Format.TABLE,
    categorical: CategoricalOpt = None,
    prediction: Annotated[str | None, typer.Option(help="Prediction column (prediction drift)")] = None,
    label: Annotated[str | None, typer.Option(help="Label column (performance drift)")] = None,
    alpha: Annotated[float, typer.Option(help="Family-wise error rate per file")] = 0.01,
    fail_on_drift: Annotated[bool, typer.Option(help="Exit 1 when any file drifted")] = False,
) -> None:
    """Test each CURRENT file against the reference (profiled once); print one result per file."""
    from aiopsd.detectors.drift import profile_reference, test_window

    try:
        ref = read_table(reference)
        profile = profile_reference(ref, categorical=categorical or (), prediction=prediction, label=label)
        any_drift = False
        for path in current:
            res = test_window(profile, read_table(path), alpha=alpha)
            any_drift |= res.drift
            if fmt is Format.JSON:
                typer.echo(json.dumps(_line(path, res), allow_nan=False))
            else:
                out.print(_table(path, res))
    except (AiopsdError, ValueError) as exc:
        raise _fail(str(exc)) from None
    if fail_on_drift and any_drift:
        raise typer.Exit(1)


ModelDir = Annotated[Path, typer.Option("--model-dir", "-d", help="Versioned model directory")]


@model_app.command("list")
def model_list(model_dir: ModelDir,
               fmt: Annotated[Format, typer.Option("--format")] = Format.TABLE) -> None:
    """Every version with its status and gate metrics; the served one is marked."""
    from aiopsd.actions import model_registry as reg

    versions = reg.list_versions(model_dir)
    if fmt is Format.JSON:
        for v in versions:
            typer.echo(json.dumps({"version": v.number, "status": v.status, "current": v.current,
                                   "created_at": v.created_at, "metrics": v.metrics}, default=str))
        return
    t = Table(title=f"{model_dir}")
    for col in ("version", "status", "created", "metric", "candidate", "current model", "served"):
        t.add_column(col)
    for v in versions:
        hold = v.metrics.get("holdout", {}) if isinstance(v.metrics.get("holdout"), dict) else {}
        t.add_row(str(v.number), v.status, v.created_at, str(v.metrics.get("metric", "-")),
                  f"{hold['candidate']:.4g}" if isinstance(hold.get("candidate"), float) else "-",
                  f"{hold['current']:.4g}" if isinstance(hold.get("current"), float) else "-",
                  "[bold green]← current[/]" if v.current else "")
    out.print(t)


@model_app.command("promote")
def model_promote(version: Annotated[int, typer.Argument(help="Version number to serve")],
                  model_dir: ModelDir) -> None:
    """Serve VERSION (atomically switches ``current``). Rejected candidates cannot be promoted."""
    from aiopsd.actions import model_registry as reg

    try:
        v = reg.promote(model_dir, version)
    except AiopsdError as exc:
        raise _fail(str(exc)) from None
    out.print(f"[green]serving[/] version {v.number} of {model_dir}")


@model_app.command("rollback")
def model_rollback(model_dir: ModelDir,
                   to: Annotated[int | None, typer.Option(help="Version to go back to")] = None) -> None:
    """Serve the version that was served before the current one (or --to)."""
    from aiopsd.actions import model_registry as reg

    try:
        before = reg.current_version(model_dir)
        v = reg.rollback(model_dir, to=to)
    except AiopsdError as exc:
        raise _fail(str(exc)) from None
    out.print(f"[green]rolled back[/] {model_dir}: version {before} → {v.number}")


@model_app.command("retrain")
def model_retrain(
    model_dir: ModelDir,
    data: Annotated[Path, typer.Option(help="Labelled data (CSV or Parquet)")],
    label: Annotated[str, typer.Option(help="Label column")],
    min_improvement: Annotated[float, typer.Option(help="Gate margin in metric units")] = 0.0,
    metric: Annotated[str | None, typer.Option(help="accuracy, f1, mae, mse or r2")] = None,
    command: Annotated[str | None, typer.Option(help="Train with this shell-split command instead")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds before the job's process group is killed")] = 3600.0,
) -> None:
    """Retrain behind the gate now (what a `retrain` rule action does); exit 1 unless promoted."""
    import shlex

    from pydantic import ValidationError

    from aiopsd.actions.retrain import RetrainParams, run_retrain

    try:
        params = RetrainParams.model_validate({
            "model_dir": model_dir, "data_path": data, "label": label, "min_improvement": min_improvement,
            "metric": metric, "job": "command" if command else "sklearn",
            "command": shlex.split(command) if command else None})
    except ValidationError as exc:
        raise _fail(str(exc.errors()[0]["msg"])) from None
    res = run_retrain(params, timeout)
    colour = {"promoted": "green", "rejected": "yellow"}.get(res.status, "bold red")
    out.print(f"[{colour}]{res.status}[/]: {res.message}", highlight=False)
    if res.status != "promoted":
        raise typer.Exit(1)
