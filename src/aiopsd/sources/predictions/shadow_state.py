"""What a model lifecycle keeps: the paired per-row scores of a shadow (a file under the state dir)
and the JSON of a version's lifecycle record (in the model store)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from aiopsd.detectors.drift.paired import Array, Comparison
from aiopsd.model_store import ModelVersion


def stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def comparison_record(c: Comparison, min_improvement: float) -> dict[str, Any]:
    return {
        "metric": c.metric,
        "rows": c.rows,
        "champion": finite(c.champion),
        "challenger": finite(c.challenger),
        "advantage": finite(c.advantage.mean),
        "low": finite(c.advantage.low),
        "high": finite(c.advantage.high),
        "confidence": c.advantage.confidence,
        "min_improvement": min_improvement,
    }


@dataclass
class Paired:
    """Per-row scores of champion and challenger on the same rows: committed, plus this poll's."""

    path: Path
    champion: Array = field(default_factory=lambda: np.empty(0))
    challenger: Array = field(default_factory=lambda: np.empty(0))
    pending: list[tuple[Array, Array]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Paired:
        if path.is_file():
            with np.load(path) as z:
                return cls(path, np.asarray(z["champion"], float), np.asarray(z["challenger"], float))
        return cls(path)

    @property
    def rows(self) -> int:
        return len(self.champion) + sum(len(a) for a, _ in self.pending)

    def commit(self) -> None:
        if not self.pending:
            return
        self.champion = np.concatenate([self.champion, *(a for a, _ in self.pending)])
        self.challenger = np.concatenate([self.challenger, *(b for _, b in self.pending)])
        self.pending = []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.stem}.tmp.npz")
        np.savez(tmp, champion=self.champion, challenger=self.challenger)
        tmp.replace(self.path)


def record_of(v: ModelVersion) -> dict[str, Any]:
    rec = v.meta.get("lifecycle")
    return dict(rec) if isinstance(rec, dict) else {}
