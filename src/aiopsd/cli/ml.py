"""``aiopsd drift ...`` and ``aiopsd model ...``: typer sub-apps, built by :func:`create_drift_app` and
:func:`create_model_app` and added to the main app by :func:`register`."""

from __future__ import annotations

import json
import math
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from aiopsd.cli.common import fail, out
from aiopsd.errors import AiopsdError

if TYPE_CHECKING:  # pandas loads only when a command runs: `aiopsd --help` stays fast
    import pandas as pd

    from aiopsd.detectors.drift import DriftResult
    from aiopsd.model_store import ModelStore


class Format(StrEnum):
    JSON = "json"
    TABLE = "table"


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
    line: dict[str, Any] = {
        "current": str(path),
        "drift": res.drift,
        "columns": {
            name: {
                "test": c.test,
                "statistic": _num(c.statistic),
                "p_value": _num(c.p_value),
                "psi": _num(c.psi),
                "drift": c.drift,
            }
            for name, c in res.columns.items()
        },
    }
    if res.performance is not None:
        p = res.performance
        line["performance"] = {
            "test": p.test,
            "statistic": _num(p.statistic),
            "p_value": _num(p.p_value),
            "drift": p.drift,
            "reference": p.reference,
            "window": p.window,
        }
    return line


def _table(path: Path, res: DriftResult) -> Table:
    verdict = "[bold red]DRIFT[/]" if res.drift else "[green]no drift[/]"
    t = Table(title=f"{path}: {verdict} ({res.rows} rows, alpha {res.alpha:g}, weighted Bonferroni)")
    for col in ("column", "test", "statistic", "p (adjusted)", "PSI", "missing ref→win", "drift"):
        t.add_column(col, justify="left" if col in {"column", "test"} else "right")

    def f(x: float | None, spec: str = ".3g") -> str:
        return "-" if x is None or not math.isfinite(x) else format(x, spec)

    for name, c in res.columns.items():
        t.add_row(
            name + (" (prediction)" if c.role == "prediction" else ""),
            c.test,
            f(c.statistic),
            f(c.p_value),
            f(c.psi),
            f"{c.missing_rate_reference:.1%}→{c.missing_rate_window:.1%}",
            "[bold red]yes[/]" if c.drift else "no",
        )
    if res.performance is not None:
        p = res.performance
        t.add_row(
            "(performance)",
            p.test,
            f(p.statistic),
            f(p.p_value),
            "-",
            ", ".join(f"{k} {p.reference.get(k, math.nan):.3g}→{v:.3g}" for k, v in p.window.items()),
            "[bold red]yes[/]" if p.drift else "no",
        )
    return t


def _drift_group() -> None:
    """Test data files for drift against a reference."""  # keeps `drift check` a sub-command


CategoricalOpt = Annotated[list[str] | None, typer.Option(help="Treat this numeric column as categorical")]
FormatOpt = Annotated[Format, typer.Option("--format", help="json: one line per file; table: rich")]


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
        raise fail(exc) from None
    if fail_on_drift and any_drift:
        raise typer.Exit(1)


ModelDir = Annotated[Path | None, typer.Option("--model-dir", "-d", help="Versioned model directory")]
MlflowOpt = Annotated[str | None, typer.Option("--mlflow", help="MLflow tracking URI (with --name)")]
NameOpt = Annotated[str | None, typer.Option("--name", help="MLflow registered model name")]
AliasOpt = Annotated[str, typer.Option("--alias", help="MLflow alias of the served version")]
StoreConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Use the model_store of a prediction log in this config (with --model)"),
]
LogModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Prediction log model name (with --config)")]


def open_model_store(
    model_dir: Path | None,
    mlflow: str | None = None,
    name: str | None = None,
    alias: str = "champion",
    config: Path | None = None,
    model: str | None = None,
) -> ModelStore:
    """The store the options name: --model-dir, --mlflow URI --name NAME, or --config FILE --model NAME."""
    from pydantic import ValidationError

    from aiopsd.model_store import StoreSpec, open_store, spec_for

    chosen = [o for o, v in (("--model-dir", model_dir), ("--mlflow", mlflow), ("--config", config)) if v]
    if len(chosen) != 1:
        raise AiopsdError(
            "name one model store: --model-dir DIR, --mlflow URI --name NAME, or --config FILE --model NAME"
        )
    if config is not None:
        from aiopsd.config import load_settings

        logs = {p.model: p for p in load_settings(config).prediction_logs}
        if model not in logs:
            raise AiopsdError(f"{config} has no prediction log for model {model!r}; known: {', '.join(logs) or '-'}")
        spec = spec_for(logs[model].model_store, model=model, model_dir=logs[model].model_dir)
        if spec is None:
            raise AiopsdError(f"prediction log {model!r} in {config} has neither model_dir nor model_store")
        return open_store(spec)
    try:
        spec = (
            StoreSpec(kind="directory", path=model_dir)
            if model_dir
            else StoreSpec(kind="mlflow", tracking_uri=mlflow, name=name, alias=alias)
        )
    except ValidationError as exc:
        raise AiopsdError(str(exc.errors()[0]["msg"])) from None
    if spec.kind == "mlflow" and not name:
        raise AiopsdError("--mlflow needs --name (the registered model name)")
    return open_store(spec)


def model_list(
    model_dir: ModelDir = None,
    mlflow: MlflowOpt = None,
    name: NameOpt = None,
    alias: AliasOpt = "champion",
    config: StoreConfigOpt = None,
    model: LogModelOpt = None,
    fmt: Annotated[Format, typer.Option("--format")] = Format.TABLE,
) -> None:
    """Every version with its status and gate metrics; the served one is marked."""
    try:
        store = open_model_store(model_dir, mlflow, name, alias, config, model)
        versions = store.list_versions()
    except AiopsdError as exc:
        raise fail(exc) from None
    if fmt is Format.JSON:
        for v in versions:
            typer.echo(
                json.dumps(
                    {
                        "version": v.number,
                        "status": v.status,
                        "current": v.current,
                        "created_at": v.created_at,
                        "metrics": v.metrics,
                        "uri": v.uri,
                    },
                    default=str,
                )
            )
        return
    t = Table(title=store.label)
    for col in ("version", "status", "created", "metric", "candidate", "current model", "served"):
        t.add_column(col)
    for v in versions:
        hold = v.metrics.get("holdout", {}) if isinstance(v.metrics.get("holdout"), dict) else {}
        t.add_row(
            str(v.number),
            v.status,
            v.created_at,
            str(v.metrics.get("metric", "-")),
            f"{hold['candidate']:.4g}" if isinstance(hold.get("candidate"), float) else "-",
            f"{hold['current']:.4g}" if isinstance(hold.get("current"), float) else "-",
            "[bold green]← current[/]" if v.current else "",
        )
    out.print(t)


def model_show(
    version: Annotated[int, typer.Argument(help="Version number")],
    model_dir: ModelDir = None,
    mlflow: MlflowOpt = None,
    name: NameOpt = None,
    alias: AliasOpt = "champion",
    config: StoreConfigOpt = None,
    model: LogModelOpt = None,
) -> None:
    """VERSION's status, gate metrics and data lineage (training rows, sources, table hash, schema, code)."""
    try:
        v = open_model_store(model_dir, mlflow, name, alias, config, model).get(version)
    except AiopsdError as exc:
        raise fail(exc) from None
    lineage = v.meta.get("lineage")
    typer.echo(
        json.dumps(
            {
                "version": v.number,
                "uri": v.uri,
                "status": v.status,
                "current": v.current,
                "created_at": v.created_at,
                "parent": v.meta.get("parent"),
                "metrics": v.metrics,
                "lineage": lineage if isinstance(lineage, dict) else None,
            },
            indent=2,
            default=str,
        )
    )


def model_promote(
    version: Annotated[int, typer.Argument(help="Version number to serve")],
    model_dir: ModelDir = None,
    mlflow: MlflowOpt = None,
    name: NameOpt = None,
    alias: AliasOpt = "champion",
    config: StoreConfigOpt = None,
    model: LogModelOpt = None,
) -> None:
    """Serve VERSION (atomically moves ``current`` / the alias). Rejected candidates cannot be promoted."""
    try:
        store = open_model_store(model_dir, mlflow, name, alias, config, model)
        v = store.promote(version)
    except AiopsdError as exc:
        raise fail(exc) from None
    out.print(f"[green]serving[/] version {v.number} of {store.label}", highlight=False)


def model_rollback(
    model_dir: ModelDir = None,
    mlflow: MlflowOpt = None,
    name: NameOpt = None,
    alias: AliasOpt = "champion",
    config: StoreConfigOpt = None,
    model: LogModelOpt = None,
    to: Annotated[int | None, typer.Option(help="Version to go back to")] = None,
) -> None:
    """Serve the version that was served before the current one (or --to)."""
    try:
        store = open_model_store(model_dir, mlflow, name, alias, config, model)
        before = store.current()
        v = store.rollback(to=to)
    except AiopsdError as exc:
        raise fail(exc) from None
    out.print(f"[green]rolled back[/] {store.label}: version {before} → {v.number}", highlight=False)


def model_retrain(
    data: Annotated[Path, typer.Option(help="Labelled data (CSV or Parquet)")],
    label: Annotated[str, typer.Option(help="Label column")],
    min_improvement: Annotated[float, typer.Option(help="Gate margin in metric units")] = 0.0,
    metric: Annotated[str | None, typer.Option(help="accuracy, f1, mae, mse or r2")] = None,
    command: Annotated[str | None, typer.Option(help="Train with this shell-split command instead")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds before the job's process group is killed")] = 3600.0,
    model_dir: ModelDir = None,
    mlflow: MlflowOpt = None,
    name: NameOpt = None,
    alias: AliasOpt = "champion",
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Training tables are kept under STATE_DIR/training (default: MODEL_DIR/training)"),
    ] = None,
) -> None:
    """Retrain behind the gate now (what a `retrain` rule action does); exit 1 unless promoted."""
    import shlex

    from pydantic import ValidationError

    from aiopsd.actions.retrain import RetrainParams, run_retrain

    try:
        params = RetrainParams.model_validate(
            {
                "model_dir": model_dir,
                "data_path": data,
                "label": label,
                "min_improvement": min_improvement,
                "state_dir": state_dir,
                "store": {"kind": "mlflow", "tracking_uri": mlflow, "name": name, "alias": alias} if mlflow else None,
                "metric": metric,
                "job": "command" if command else "sklearn",
                "command": shlex.split(command) if command else None,
            }
        )
    except ValidationError as exc:
        raise fail(str(exc.errors()[0]["msg"])) from None
    res = run_retrain(params, timeout)
    colour = {"promoted": "green", "rejected": "yellow"}.get(res.status, "bold red")
    out.print(f"[{colour}]{res.status}[/]: {res.message}", highlight=False)
    if res.status != "promoted":
        raise typer.Exit(1)


def create_drift_app() -> typer.Typer:
    """``drift check``."""
    drift_app = typer.Typer(
        no_args_is_help=True, add_completion=False, help="Test data files for drift against a reference."
    )
    drift_app.callback()(_drift_group)
    drift_app.command("check")(drift_check)
    return drift_app


def create_model_app() -> typer.Typer:
    """``model list | show | promote | rollback | retrain | approve``."""
    from aiopsd.cli.lifecycle import model_approve

    model_app = typer.Typer(
        no_args_is_help=True,
        add_completion=False,
        help="List, show, promote and roll back model versions (directory or MLflow).",
    )
    for name, command in (
        ("list", model_list),
        ("show", model_show),
        ("promote", model_promote),
        ("rollback", model_rollback),
        ("retrain", model_retrain),
        ("approve", model_approve),
    ):
        model_app.command(name)(command)
    return model_app


def register(app: typer.Typer) -> None:
    """Add the ``drift`` and ``model`` groups to APP."""
    app.add_typer(create_drift_app(), name="drift", help="Offline drift checks of CSV files against a reference.")
    app.add_typer(create_model_app(), name="model", help="Versioned model directories: list, promote, rollback.")
