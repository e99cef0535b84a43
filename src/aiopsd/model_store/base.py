"""The model store contract: what every backend (directory, MLflow) offers, and the spec that opens one.

A store holds numbered versions of one model. Exactly one version (or none yet)
is *served*: the directory's ``current`` symlink, MLflow's ``champion`` alias.
``promote`` moves that pointer and appends one line to the store's history;
``rollback`` moves it back along that history. The pointer is the truth: a crash
between moving it and writing the history is repaired when the history is read
(:func:`served_stack`), so a crash never leaves two champions or a rollback that
skips a version.

``status`` of a version: ``promoted`` (was served at some point), ``candidate``
(stored, never served), ``shadow`` (passed the offline gate, being compared with the
champion on live rows; never served yet) or ``rejected`` (failed the retrain gate or its
shadow comparison; never served). ``mark`` sets a version's status and its ``lifecycle``
record (the shadow comparison, the decision, the regression watch: see
:mod:`aiopsd.sources.predictions.lifecycle`), kept with the version in the store itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import Field, field_validator, model_validator

from aiopsd.errors import AiopsdError
from aiopsd.models import Frozen

Status = Literal["promoted", "candidate", "shadow", "rejected"]
STATUSES: tuple[Status, ...] = ("promoted", "candidate", "shadow", "rejected")


class RegistryError(AiopsdError):
    """The model store cannot do what was asked; the message says what to do."""


@dataclass(frozen=True)
class ModelVersion:
    number: int
    status: Status
    created_at: str
    current: bool
    metrics: dict[str, Any]
    meta: dict[str, Any]
    # Where the model lives: a directory (directory backend) or a ``models:/NAME/N`` URI (MLflow).
    uri: str


class ModelStore(Protocol):
    """One model's versions and its served pointer."""

    @property
    def label(self) -> str:
        """How the user names this store (a directory, ``mlflow:NAME``)."""

    def list_versions(self) -> list[ModelVersion]:
        """Every version, oldest first."""

    def get(self, number: int) -> ModelVersion:
        """One version; RegistryError when there is no such version."""

    def register(
        self, model: Any, *, metrics: dict[str, Any], meta: dict[str, Any] | None = None, status: Status = "candidate"
    ) -> ModelVersion:
        """Store ``model`` as the next version (never served by this call)."""

    def promote(self, number: int, *, reason: str = "promoted by hand") -> ModelVersion:
        """Serve ``number``; rejected versions are refused."""

    def rollback(self, *, to: int | None = None) -> ModelVersion:
        """Serve the version served before the present one (or ``to``)."""

    def current(self) -> int | None:
        """The served version, or None when nothing was promoted yet."""

    def load(self, number: int | None = None) -> tuple[int, Any]:
        """(number, model object) of ``number``, or of the served version."""

    def history(self) -> list[dict[str, Any]]:
        """Every switch of the served pointer, oldest first: version, kind, reason, at."""

    def mark(
        self, number: int, *, status: Status | None = None, lifecycle: dict[str, Any] | None = None
    ) -> ModelVersion:
        """Set ``number``'s status (never to ``promoted``: that is :meth:`promote`) and/or replace its
        lifecycle record."""


# The one registry of backends: kind -> "module:Class"; the class has ``from_spec(spec)``.
# Imported on use, so the directory backend never needs mlflow installed.
BACKENDS: dict[str, str] = {
    "directory": "aiopsd.model_store.directory:DirectoryStore",
    "mlflow": "aiopsd.model_store.mlflow_store:MlflowStore",
}


class StoreSpec(Frozen):
    """Which store a prediction log's model lives in (``model_store:`` in the config)."""

    kind: str = "directory"
    # directory: the versioned model directory (defaults to the prediction log's model_dir).
    path: Path | None = None
    # mlflow: tracking server and registered model name (defaults to the prediction log's model).
    tracking_uri: str | None = None
    name: str | None = Field(default=None, pattern=r"^[a-zA-Z0-9_.-]+$")
    alias: str = Field(default="champion", pattern=r"^[a-zA-Z_][a-zA-Z0-9_-]*$")
    experiment: str = Field(default="aiopsd", min_length=1)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in BACKENDS:
            raise ValueError(f"unknown model_store kind {value!r}; known: {', '.join(sorted(BACKENDS))}")
        return value

    @model_validator(mode="after")
    def _complete(self) -> StoreSpec:
        if self.kind == "mlflow" and not self.tracking_uri:
            raise ValueError("an mlflow model_store needs tracking_uri (e.g. http://127.0.0.1:5000)")
        if self.kind == "mlflow" and self.alias.lower() in {"latest"}:
            raise ValueError("alias 'latest' is reserved by MLflow; use e.g. champion")
        return self


def check_mark(number: int, current: int | None, old: Status, status: Status | None) -> None:
    """``mark`` never serves a version, never un-serves one, and never rewrites a served version's past."""
    if status is None or status == old:
        return
    if status == "promoted":
        raise RegistryError(f"version {number}: use promote to serve a version, not mark")
    if current == number or old == "promoted":
        raise RegistryError(f"version {number} has been served; its status stays promoted")


def served_stack(events: Iterable[dict[str, Any]], current: int | None) -> list[int]:
    """The chain of served versions: a promote pushes, a rollback pops back to its target.

    ``current`` (the pointer) wins over the history: when the last switch was cut
    off before its history line was written, the pointer's version is pushed.
    """
    stack: list[int] = []
    for h in events:
        v = int(h["version"])
        if h.get("kind") == "rollback":
            if v in stack:  # back to an earlier link of the chain
                del stack[len(stack) - stack[::-1].index(v) :]
                continue
            if stack:
                stack.pop()  # a rollback to a version never served replaces the present one
        if not stack or stack[-1] != v:
            stack.append(v)
    if current is not None and (not stack or stack[-1] != current):
        stack.append(current)
    return stack


def rollback_target(label: str, events: list[dict[str, Any]], current: int | None) -> int:
    stack = served_stack(events, current)
    if current is None or len(stack) < 2:
        raise RegistryError(f"{label} has no earlier served version to roll back to")
    return stack[-2]
