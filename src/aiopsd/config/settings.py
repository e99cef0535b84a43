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
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from aiopsd.actions.notify import AnyChannel
from aiopsd.durations import PositiveDuration
from aiopsd.engine.maintenance import MaintenanceWindow
from aiopsd.errors import ConfigError, clean_msg
from aiopsd.yamlfile import read_yaml

if TYPE_CHECKING:
    pass


from aiopsd.config.sections import (
    SHARDS_PLACEHOLDER,
    ActionsConfig,
    AlertsConfig,
    ApprovalsConfig,
    AWXConfig,
    HAConfig,
    ShardingConfig,
    SilencesConfig,
    WebhookConfig,
)
from aiopsd.config.sources import PredictionLogConfig, PrometheusConfig, WatchConfig


class Settings(BaseSettings):
    """The whole daemon configuration (see aiopsd.example.yaml for every field)."""

    model_config = SettingsConfigDict(env_prefix="AIOPSD_", env_nested_delimiter="__", extra="forbid", frozen=True)

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
    sharding: ShardingConfig = ShardingConfig()
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
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
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
        for what, names in (
            ("watch", [w.name for w in self.watches]),
            ("prediction log model", [p.model for p in self.prediction_logs]),
            ("maintenance window", [m.name for m in self.maintenance]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{what} names must be unique; repeated: {', '.join(dupes)}")
        if self.sharding.enabled and self.sharding.label is None:
            bad = [w.name for w in self.watches if SHARDS_PLACEHOLDER in w.query]
            if bad:
                raise ValueError(f"watch {bad[0]}: {SHARDS_PLACEHOLDER} in a query needs sharding.label")
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
            {
                **item,
                **{
                    k: str(base / item[k])
                    for k in _LOG_PATH_FIELDS
                    if isinstance(item.get(k), str) and not os.path.isabs(item[k])
                },
            }
            if isinstance(item, dict)
            else item
            for item in logs
        ]
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
            name: {
                k: str(base / v) if k.endswith("_file") and isinstance(v, str) and not os.path.isabs(v) else v
                for k, v in ch.items()
            }
            if isinstance(ch, dict)
            else ch
            for name, ch in channels.items()
        }
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
