"""One exception hierarchy for everything aiopsd raises on purpose."""

from __future__ import annotations


class AiopsdError(Exception):
    """Root of every error aiopsd raises deliberately; the message is for a person."""


class ConfigError(AiopsdError):
    """A config or rule file is invalid; the message names file, rule and field."""

    def __init__(
        self, message: str, *, file: str | None = None, rule: str | None = None, field: str | None = None
    ) -> None:
        self.file = file
        self.rule = rule
        self.field = field
        parts = []
        if file:
            parts.append(file)
        if rule:
            parts.append(f"rule {rule!r}")
        if field:
            parts.append(f"field {field!r}")
        prefix = ": ".join([", ".join(parts)]) + ": " if parts else ""
        super().__init__(f"{prefix}{message}")


class NotFittedError(AiopsdError, ValueError):
    """A detector was used before fit(), like scikit-learn's NotFittedError."""


class StoreUnavailableError(AiopsdError):
    """The state store could not commit; callers answer 503 so senders retry."""


class SourceError(AiopsdError):
    """A data source (Prometheus, a log file) could not be read this time."""


class ActionError(AiopsdError):
    """An action could not be started (bad playbook path, missing binary, ...)."""


def clean_msg(msg: str) -> str:
    """A pydantic validation message without its "Value error, " prefix."""
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
