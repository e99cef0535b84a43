"""Read a YAML file for a person: a missing file or bad YAML is a ConfigError naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from aiopsd.errors import ConfigError


def read_yaml(path: Path, *, what: str = "file") -> Any:
    """The parsed document (None for an empty file); ``what`` names the file in the error."""
    label = str(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} not found", file=label) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", file=label) from None
