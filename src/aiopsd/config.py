"""Settings: one YAML file, overridden by ``AIOPSD_*`` environment variables, validated on load.

Relative paths in the file are resolved against the file's own directory, so a
config works the same from any working directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from aiopsd.actions.notify import AnyChannel
from aiopsd.durations import Duration, PositiveDuration
from aiopsd.engine.maintenance import MaintenanceWindow
from aiopsd.engine.rules import RateBudget
from aiopsd.errors import ConfigError, clean_msg
from aiopsd.model_store.base import StoreSpec
from aiopsd.models import Frozen
from aiopsd.yamlfile import read_yaml

if TYPE_CHECKING:
    from aiopsd.detectors.anomaly.knobs import Knobs


class PrometheusConfig(Frozen):
    url: str = "http://127.0.0.1:9090"
    timeout: PositiveDuration = 10.0
    # Samples this close to "now" may still be arriving; they are re-read next poll.
    overlap: Duration = 60.0
    # A series whose newest sample is older than this is stale: no decisions from it.
    stale_after: PositiveDuration = 300.0


class WatchConfig(Frozen):
    """One PromQL expression polled with query_range and scored per series."""

    name: str = Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_:.-]*$")
    query: str = Field(min_length=1)
    step: PositiveDuration = 30.0
    interval: PositiveDuration = 30.0
    detector: str = "default"
    detector_params: dict[str, Any] = Field(default_factory=dict)
    # History read on the first poll to warm the detector up.
    lookback: PositiveDuration = 3600.0
    # Consecutive normal points that close an open anomaly incident; also the polls after which
    # a vanished series' exported score gauges are dropped.
    resolve_after: int = Field(default=5, ge=1)
    # Series tracked at most (one detector each); the excess is refused, counted and shown.
    max_series: int = Field(default=2000, ge=1)
    # Noise knobs (docs/anomaly.md): which side of the band alerts, how far from it a value must be
    # (absolute, and relative to |yhat|), and how long after a series first appears nothing alerts.
    direction: Literal["up", "down", "both"] = "both"
    min_deviation: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    min_relative_deviation: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    warmup: Duration = 0.0

    @model_validator(mode="after")
    def _positive(self) -> WatchConfig:
        if self.step <= 0 or self.interval <= 0:
            raise ValueError("step and interval must be greater than 0")
        return self

    @field_validator("detector")
    @classmethod
    def _known_detector(cls, value: str) -> str:
        from aiopsd.detectors.anomaly import DETECTORS

        if value not in DETECTORS:
            raise ValueError(f"unknown detector {value!r}; known: {', '.join(sorted(DETECTORS))}")
        return value

    @field_validator("detector_params")
    @classmethod
    def _valid_params(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Parameters are checked against the detector's declared constraints at load, not in the poll loop."""
        from aiopsd.detectors.anomaly import validate_detector_params

        if "detector" in info.data:  # else the detector name itself is the error reported
            validate_detector_params(info.data["detector"], value)
        return value

    @field_validator("warmup")
    @classmethod
    def _non_negative(cls, value: float) -> float:
        if value < 0:
            raise ValueError("warmup must be >= 0")
        return value

    @model_validator(mode="after")
    def _knobs_fit_the_detector(self) -> WatchConfig:
        from aiopsd.detectors.anomaly import make_detector
        from aiopsd.detectors.anomaly.knobs import knob_problem

        problem = knob_problem(make_detector(self.detector, **self.detector_params), self.knobs)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def knobs(self) -> Knobs:
        """The noise knobs of this watch, for :func:`aiopsd.detectors.anomaly.knobs.with_knobs`."""
        from aiopsd.detectors.anomaly.knobs import Knobs

        return Knobs(self.direction, self.min_deviation, self.min_relative_deviation, self.warmup)


class DriftWindow(Frozen):
    """A window closes after ``rows`` rows or ``seconds`` of rows, whichever comes first."""

    rows: int | None = Field(default=500, ge=20)
    seconds: PositiveDuration | None = None

    @model_validator(mode="after")
    def _some_bound(self) -> DriftWindow:
        if self.rows is None and self.seconds is None:
            raise ValueError("a window needs rows, seconds or both")
        return self


class PredictionLogConfig(Frozen):
    """One model's prediction log (JSONL or CSV files; a path or a glob), checked for drift."""

    model: str = Field(pattern=r"^[a-zA-Z0-9_.-]+$")
    path: str
    format: Literal["auto", "jsonl", "csv"] = "auto"
    # The reference the windows are compared with: a CSV/JSONL file, or else the first rows logged.
    reference: Path | None = None
    reference_rows: int = Field(default=1000, ge=100)
    window: DriftWindow = DriftWindow()
    interval: PositiveDuration = 30.0
    task: Literal["classification", "regression"] = "classification"
    # Where the served model lives (versions/<n>/, current): retrain rules act on it.
    model_dir: Path | None = None
    # Or another model store: {kind: mlflow, tracking_uri: ..., name: ...} (name defaults to ``model``).
    model_store: StoreSpec | None = None
    # Render an Evidently report (HTML + JSON) when drift fires.
    reports: bool = True

    @model_validator(mode="after")
    def _store_has_a_place(self) -> PredictionLogConfig:
        if self.model_store is not None and self.model_store.kind == "directory" \
                and self.model_store.path is None and self.model_dir is None:
            raise ValueError("a directory model_store needs path (or set model_dir)")
        return self


class WebhookAuth(Frozen):
    bearer_token: str | None = None
    bearer_token_file: Path | None = None
    basic_username: str | None = None
    basic_password_file: Path | None = None


class ApprovalsConfig(Frozen):
    """Who may approve runs held by ``require_approval`` over HTTP: its own credential.

    Unset (the default), ``POST /api/v1/actions/{id}/approve`` answers 403 and approvals go
    through ``aiopsd approve ID`` on the host. The webhook's credential never approves:
    whoever can send alerts must not also be able to release the actions they cause.
    """

    auth: WebhookAuth = WebhookAuth()


class WebhookConfig(Frozen):
    auth: WebhookAuth = WebhookAuth()
    max_body_bytes: int = Field(default=1_048_576, ge=1024)


class ActionsConfig(Frozen):
    concurrency: int = Field(default=4, ge=1)
    dry_run: bool = False
    # Global rate budget: at most ``count`` actions of all rules within ``window``.
    max_per_window: RateBudget | None = None
    # How long SIGTERM waits for running actions before cancelling them.
    shutdown_grace: Duration = 30.0


class AlertsConfig(Frozen):
    """Alertmanager alerts (webhook findings)."""

    # A firing alert finding not delivered again for this long resolves as "expired" (a lost or
    # never-sent resolve must not keep it actionable). Keep it above Alertmanager's repeat_interval
    # (default 4h), which is how often a still-firing alert is re-sent.
    max_age: PositiveDuration = 43200.0


class AWXConfig(Frozen):
    """AWX / Ansible Automation Platform controller for ``job_template`` actions (token auth)."""

    url: str | None = None
    token_file: Path | None = None
    verify_tls: bool = True
    # How often a launched job's status is read.
    poll_interval: PositiveDuration = 5.0


class SilencesConfig(Frozen):
    """Read Alertmanager's silences (alertmanager_url, API v2): a silenced finding is not remediated."""

    enabled: bool = False
    # Silences are read at most this often; a failed read marks them unknown (no actions) until one succeeds.
    ttl: Duration = Field(default=15.0, gt=0)
    timeout: Duration = Field(default=5.0, gt=0)


class HAConfig(Frozen):
    """Several replicas on one PostgreSQL database (ignored with SQLite, which is one node)."""

    # A leader that stops renewing loses the lease after this long; a follower then takes over.
    lease_ttl: PositiveDuration = 15.0

    @model_validator(mode="after")
    def _ttl(self) -> HAConfig:
        if self.lease_ttl < 1:
            raise ValueError("lease_ttl must be at least 1s")
        return self


class Settings(BaseSettings):
    """The whole daemon configuration (see aiopsd.example.yaml for every field)."""

    model_config = SettingsConfigDict(env_prefix="AIOPSD_", env_nested_delimiter="__", extra="forbid",
                                      frozen=True)

    listen: str = "127.0.0.1:9797"
    state_url: str = "sqlite:///aiopsd-state.db"
    state_dir: Path = Path("aiopsd-state")
    prometheus: PrometheusConfig = PrometheusConfig()
    watches: list[WatchConfig] = Field(default_factory=list)
    prediction_logs: list[PredictionLogConfig] = Field(default_factory=list)
    rules_dir: Path = Path("rules")
    playbooks_dir: Path = Path("playbooks")
    webhook: WebhookConfig = WebhookConfig()
    approvals: ApprovalsConfig = ApprovalsConfig()
    actions: ActionsConfig = ActionsConfig()
    alerts: AlertsConfig = AlertsConfig()
    ha: HAConfig = HAConfig()
    awx: AWXConfig = AWXConfig()
    alertmanager_url: str | None = None
    # Named channels a notify action can name (``channel:``); see docs/rules.md.
    notify_channels: dict[str, AnyChannel] = Field(default_factory=dict)
    # Planned work: matching findings are not remediated while a window is active (docs/rules.md).
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    alertmanager_silences: SilencesConfig = SilencesConfig()
    # Site-wide extra vars for every playbook run (a rule's own extra_vars win).
    playbook_vars: dict[str, Any] = Field(default_factory=dict)
    dispatch_interval: PositiveDuration = 1.0
    # Alerts, findings, decisions, finished runs, their outputs and audit entries older than this
    # are deleted hourly (never less than the rules' guards look back on; unfinished runs never).
    retention: PositiveDuration = 30 * 86400.0
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment variables override the file (which arrives as init kwargs).
        return env_settings, init_settings

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"listen must be HOST:PORT, got {value!r}")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        for what, names in (("watch", [w.name for w in self.watches]),
                            ("prediction log model", [p.model for p in self.prediction_logs]),
                            ("maintenance window", [m.name for m in self.maintenance])):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{what} names must be unique; repeated: {', '.join(dupes)}")
        if self.alertmanager_silences.enabled and not self.alertmanager_url:
            raise ValueError("alertmanager_silences.enabled needs alertmanager_url")
        bad = sorted(n for n in self.notify_channels if not _NAME.fullmatch(n))
        if bad:
            raise ValueError(f"notify channel names are letters, digits, '_', '.', '-'; got {bad[0]!r}")
        return self

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


_NAME = re.compile(r"[a-zA-Z0-9_.-]+")
_PATH_FIELDS = ("state_dir", "rules_dir", "playbooks_dir")
_LOG_PATH_FIELDS = ("path", "reference", "model_dir")


def _resolve_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    out = dict(raw)
    for key in _PATH_FIELDS:
        if isinstance(out.get(key), str) and not os.path.isabs(out[key]):
            out[key] = str(base / out[key])
    logs = out.get("prediction_logs")
    if isinstance(logs, list):
        out["prediction_logs"] = [
            {**item, **{k: str(base / item[k]) for k in _LOG_PATH_FIELDS
                        if isinstance(item.get(k), str) and not os.path.isabs(item[k])}}
            if isinstance(item, dict) else item for item in logs]
        for item in out["prediction_logs"]:
            store = item.get("model_store") if isinstance(item, dict) else None
            if isinstance(store, dict) and isinstance(store.get("path"), str) and not os.path.isabs(store["path"]):
                item["model_store"] = {**store, "path": str(base / store["path"])}
    url = out.get("state_url")
    if isinstance(url, str) and url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rel = url.removeprefix("sqlite:///")
        if rel and rel != ":memory:":
            out["state_url"] = f"sqlite:///{base / rel}"
    awx = out.get("awx")
    if isinstance(awx, dict) and isinstance(awx.get("token_file"), str) and not os.path.isabs(awx["token_file"]):
        out["awx"] = {**awx, "token_file": str(base / awx["token_file"])}
    for section in ("webhook", "approvals"):
        auth = (out.get(section) or {}).get("auth") if isinstance(out.get(section), dict) else None
        if isinstance(auth, dict):
            for key in ("bearer_token_file", "basic_password_file"):
                if isinstance(auth.get(key), str) and not os.path.isabs(auth[key]):
                    auth[key] = str(base / auth[key])
    channels = out.get("notify_channels")
    if isinstance(channels, dict):
        out["notify_channels"] = {
            name: {k: str(base / v) if k.endswith("_file") and isinstance(v, str) and not os.path.isabs(v) else v
                   for k, v in ch.items()} if isinstance(ch, dict) else ch
            for name, ch in channels.items()}
    return out


def format_loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc)


def load_settings(path: Path | str | None, **overrides: Any) -> Settings:
    """Read and validate a config file; raise ConfigError naming file and field."""
    raw: dict[str, Any] = {}
    label = "<defaults>"
    if path is not None:
        p = Path(path)
        label = str(p)
        loaded = read_yaml(p)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError("the top level must be a mapping of settings", file=label)
        raw = _resolve_paths(loaded, p.resolve().parent)
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**raw)
    except ValidationError as exc:
        from aiopsd.detectors.anomaly.base import InvalidParameterError

        err = exc.errors()[0]
        where = tuple(err["loc"])
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, InvalidParameterError):  # name the parameter inside detector_params
            where = (*where, cause.field)
        loc = format_loc(where)
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ConfigError(f"{clean_msg(err['msg'])}{more}", file=label, field=loc or None) from None
