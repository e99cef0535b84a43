"""The one sandboxed Jinja environment rules are rendered with: checked at load, rendered once per finding."""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

_TEMPLATES = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def check_template(value: str) -> str:
    """``value`` unchanged if it parses as a template; a ValueError naming it otherwise."""
    try:
        _TEMPLATES.parse(value)
    except TemplateSyntaxError as exc:
        raise ValueError(f"bad template {value!r}: {exc.message}") from None
    return value


def render(value: Any, context: dict[str, Any]) -> Any:
    """Render ``{{ labels.x }}`` templates in strings, recursively through lists and dicts."""
    if isinstance(value, str):
        return _TEMPLATES.from_string(value).render(**context) if "{" in value else value
    if isinstance(value, list):
        return [render(v, context) for v in value]
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    return value
