"""The MLflow Model Registry backend (through ``mlflow-skinny``: the client, no server dependencies).

A version is a registered model version whose source is an sklearn model
(cloudpickle, so any serving process loads it with ``mlflow.pyfunc.load_model``
without trusting skops types) logged by one run of the ``experiment``. The run
carries the lineage as params and tags, the training table as a logged dataset
(context ``training``) and ``aiopsd/meta.json`` / ``aiopsd/metrics.json`` as
artifacts. The served version is the one the ``alias`` (default ``champion``)
points at; stages are never used (deprecated by MLflow). An alias names one
version, and moving it is one call, so there is never more than one champion.

Version tags: ``aiopsd.status`` (set in the same call that creates the version, so a
rejected candidate is never seen untagged), ``aiopsd.created_at``,
``aiopsd.metrics`` (JSON), ``aiopsd.lifecycle`` (JSON: the shadow comparison and the
decision, set by :meth:`MlflowStore.mark`). The registered model's tag ``aiopsd.history`` keeps the
newest switches of the alias (JSON, bounded), which ``rollback`` walks back.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiopsd.model_store.base import (
    STATUSES,
    ModelVersion,
    RegistryError,
    Status,
    StoreSpec,
    check_mark,
    rollback_target,
)

HISTORY_TAG = "aiopsd.history"
HISTORY_MAX_CHARS = 4000  # under every MLflow server's tag value limit
LIFECYCLE_TAG = "aiopsd.lifecycle"  # a version's shadow comparison and decision (JSON, bounded like history)


class MlflowStore:
    """:class:`~aiopsd.model_store.base.ModelStore` on an MLflow tracking server's model registry."""

    def __init__(self, tracking_uri: str, name: str, *, alias: str = "champion", experiment: str = "aiopsd") -> None:
        from mlflow import MlflowClient

        # Progress bars on stderr would garble `aiopsd model show` and the daemon's log.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        # A server that is down should fail a command in seconds, not after minutes of retries.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        self.tracking_uri, self.name, self.alias, self.experiment = tracking_uri, name, alias, experiment
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    @classmethod
    def from_spec(cls, spec: StoreSpec) -> MlflowStore:
        if not spec.tracking_uri or not spec.name:
            raise RegistryError("an mlflow model_store needs tracking_uri and name")
        return cls(spec.tracking_uri, spec.name, alias=spec.alias, experiment=spec.experiment)

    @property
    def label(self) -> str:
        return f"mlflow:{self.name}@{self.alias} ({self.tracking_uri})"

    def _use(self) -> None:
        """Point mlflow's fluent API (log_model, load_model) at this server."""
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """MLflow failures (server down, refused request) as one RegistryError naming the store."""
        from mlflow.exceptions import MlflowException

        try:
            yield
        except MlflowException as exc:
            raise RegistryError(f"{self.label}: {str(exc).splitlines()[0][:300]}") from None

    @staticmethod
    def _missing(exc: Exception) -> bool:
        return "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or "not found" in str(exc).lower()

    # ------------------------------------------------------------------ reads
    def current(self) -> int | None:
        from mlflow.exceptions import MlflowException

        try:
            return int(self.client.get_model_version_by_alias(self.name, self.alias).version)
        except MlflowException as exc:
            if self._missing(exc):
                return None
            raise RegistryError(f"{self.label}: {exc}") from None

    def _view(self, mv: Any, current: int | None, meta: dict[str, Any] | None = None) -> ModelVersion:
        tags = dict(mv.tags or {})
        status = tags.get("aiopsd.status", "candidate")
        try:
            metrics = dict(json.loads(tags.get("aiopsd.metrics", "{}")))
        except ValueError:
            metrics = {}
        extra: dict[str, Any] = {}
        with contextlib.suppress(KeyError, ValueError, TypeError):
            extra["lifecycle"] = dict(json.loads(tags[LIFECYCLE_TAG]))
        return ModelVersion(
            number=int(mv.version),
            status=status if status in STATUSES else "candidate",
            created_at=tags.get("aiopsd.created_at", ""),
            current=int(mv.version) == current,
            metrics=metrics,
            meta={**(meta or {}), **extra, "status": status, "run_id": mv.run_id},
            uri=f"models:/{self.name}/{mv.version}",
        )

    def list_versions(self) -> list[ModelVersion]:
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.search_model_versions(f"name = '{self.name}'")
        except MlflowException as exc:
            raise RegistryError(f"{self.label}: {exc}") from None
        cur = self.current()
        return sorted((self._view(mv, cur) for mv in found), key=lambda v: v.number)

    def get(self, number: int) -> ModelVersion:
        import mlflow
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version(self.name, str(number))
        except MlflowException as exc:
            if not self._missing(exc):
                raise RegistryError(f"{self.label}: {str(exc).splitlines()[0][:300]}") from None
            raise RegistryError(f"{self.label} has no version {number}; see `aiopsd model list`") from None
        meta: dict[str, Any] = {}
        if mv.run_id:
            self._use()
            try:
                meta = dict(mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/aiopsd/meta.json"))
            except (MlflowException, OSError, ValueError):
                meta = {}  # a version registered by someone else: no aiopsd lineage
        return self._view(mv, self.current(), meta)

    def history(self) -> list[dict[str, Any]]:
        from mlflow.exceptions import MlflowException

        try:
            raw = self.client.get_registered_model(self.name).tags.get(HISTORY_TAG, "[]")
        except MlflowException as exc:
            if self._missing(exc):
                return []
            raise RegistryError(f"{self.label}: {exc}") from None
        try:
            return [dict(e) for e in json.loads(raw)]
        except (ValueError, TypeError):
            return []

    def load(self, number: int | None = None) -> tuple[int, Any]:
        import mlflow.sklearn

        if number is None:
            number = self.current()
            if number is None:
                raise RegistryError(f"{self.label} has no champion; promote a version first")
        self._use()
        with self._errors():
            return number, mlflow.sklearn.load_model(f"models:/{self.name}/{number}")

    # ----------------------------------------------------------------- writes
    def register(
        self, model: Any, *, metrics: dict[str, Any], meta: dict[str, Any] | None = None, status: Status = "candidate"
    ) -> ModelVersion:
        with self._errors():
            return self._register(model, metrics=metrics, meta=meta or {}, status=status)

    def _register(self, model: Any, *, metrics: dict[str, Any], meta: dict[str, Any], status: Status) -> ModelVersion:
        import mlflow
        import mlflow.sklearn

        self._use()
        meta = {**meta, "created_at": datetime.now(UTC).isoformat(timespec="seconds")}
        raw = meta.get("lineage")
        lineage: dict[str, Any] = raw if isinstance(raw, dict) else {}
        exp = self.client.get_experiment_by_name(self.experiment)
        exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(self.experiment)
        with mlflow.start_run(experiment_id=exp_id, run_name=f"aiopsd-{self.name}") as run:
            mlflow.log_params(_params(meta, lineage))
            mlflow.log_metrics(_scalars(metrics))
            mlflow.set_tags(
                {
                    "aiopsd.model": self.name,
                    "aiopsd.status": status,
                    "aiopsd.data_sha256": str((lineage.get("table") or {}).get("sha256", "")),
                }
            )
            _log_dataset(self.name, lineage)
            mlflow.log_dict(meta, "aiopsd/meta.json")
            mlflow.log_dict(metrics, "aiopsd/metrics.json")
            info = mlflow.sklearn.log_model(
                model, name="model", serialization_format="cloudpickle", pip_requirements=_requirements()
            )
        tags = {
            "aiopsd.status": status,
            "aiopsd.created_at": meta["created_at"],
            "aiopsd.metrics": json.dumps(metrics, default=str)[:8000],
        }
        mv = mlflow.register_model(info.model_uri, self.name, tags=tags)
        # The run id links version and lineage even when the source is a logged-model URI.
        return self._view(mv, self.current(), {**meta, "status": status, "run_id": run.info.run_id})

    def promote(self, number: int, *, reason: str = "promoted by hand") -> ModelVersion:
        with self._errors():
            return self._serve(number, kind="promote", reason=reason)

    def rollback(self, *, to: int | None = None) -> ModelVersion:
        cur = self.current()
        if to is None:
            to = rollback_target(self.label, self.history(), cur)
        with self._errors():
            return self._serve(to, kind="rollback", reason=f"rollback from {cur}")

    def mark(
        self, number: int, *, status: Status | None = None, lifecycle: dict[str, Any] | None = None
    ) -> ModelVersion:
        with self._errors():
            v = self.get(number)
            check_mark(number, self.current(), v.status, status)
            if lifecycle is not None:
                text = json.dumps(lifecycle, default=str)
                if len(text) > HISTORY_MAX_CHARS:
                    raise RegistryError(f"{self.label}: lifecycle record of version {number} is too long")
                self.client.set_model_version_tag(self.name, str(number), LIFECYCLE_TAG, text)
            if status is not None and status != v.status:
                self.client.set_model_version_tag(self.name, str(number), "aiopsd.status", status)
            return self.get(number)

    def _serve(self, number: int, *, kind: str, reason: str) -> ModelVersion:
        v = self.get(number)
        if v.status == "rejected":
            raise RegistryError(
                f"version {number} was rejected by the retrain gate and is never served; promote another version"
            )
        if v.status != "promoted":
            self.client.set_model_version_tag(self.name, str(number), "aiopsd.status", "promoted")
        self._switch(number)
        self._append_history(
            {"version": number, "kind": kind, "reason": reason, "at": datetime.now(UTC).isoformat(timespec="seconds")}
        )
        return self.get(number)

    def _switch(self, number: int) -> None:
        """The registry write: move the alias (one call; MLflow keeps one version per alias)."""
        self.client.set_registered_model_alias(self.name, self.alias, str(number))

    def _append_history(self, event: dict[str, Any]) -> None:
        """The audit write, after the switch (a crash in between is repaired by ``served_stack``)."""
        events = [*self.history(), event]
        text = json.dumps(events)
        while len(text) > HISTORY_MAX_CHARS and len(events) > 1:
            events = events[1:]
            text = json.dumps(events)
        self.client.set_registered_model_tag(self.name, HISTORY_TAG, text)


def _params(meta: dict[str, Any], lineage: dict[str, Any]) -> dict[str, str]:
    window = lineage.get("time_window") or {}
    code = lineage.get("code") or {}
    params = {
        "job": meta.get("job"),
        "parent": lineage.get("parent", meta.get("parent")),
        "label": lineage.get("label"),
        "rows": lineage.get("rows"),
        "estimator": lineage.get("estimator"),
        "features": ",".join(f["name"] for f in lineage.get("features") or []),
        "window_start": window.get("start"),
        "window_end": window.get("end"),
        "data_sha256": (lineage.get("table") or {}).get("sha256"),
        "sources": json.dumps(lineage.get("sources") or [])[:6000],
        **{f"version.{k}": v for k, v in code.items()},
    }
    return {k: str(v)[:6000] for k, v in params.items() if v is not None}


def _scalars(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            out.update(_scalars(v, f"{prefix}{k}."))
        elif isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            out[f"{prefix}{k}"] = float(v)
    return out


def _log_dataset(name: str, lineage: dict[str, Any]) -> None:
    """The kept training table as the run's input dataset (digest = its content hash)."""
    import mlflow
    import mlflow.data.pandas_dataset
    import pandas as pd

    table = lineage.get("table") or {}
    path = Path(str(table.get("path", "")))
    if not path.is_file():
        return
    frame = pd.read_csv(path)
    label = lineage.get("label")
    dataset = mlflow.data.pandas_dataset.from_pandas(
        frame,
        source=str(path),
        name=f"{name}-training",
        targets=label if label in frame.columns else None,
        digest=str(table.get("sha256", ""))[:36] or None,
    )
    mlflow.log_input(dataset, context="training")


def _requirements() -> list[str]:
    """Pinned from this process (MLflow's inference would import-trace the model in a subprocess: slow)."""
    import cloudpickle  # type: ignore[import-untyped]
    import numpy
    import sklearn

    return [
        f"scikit-learn=={sklearn.__version__}",
        f"numpy=={numpy.__version__}",
        f"cloudpickle=={cloudpickle.__version__}",
    ]
