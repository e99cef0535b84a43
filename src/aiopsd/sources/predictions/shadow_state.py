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
    """Per-row scores of champion and challenger on the same rows: committed, plus this poll's.

    Committed pairs are appended to ``path`` as little-endian float64 (champion, challenger): a
    commit writes only its own rows, so a long shadow costs the same per poll as a short one. A pair
    cut off by a crash is dropped when the file is read back.
    """

    path: Path
    chunks: list[tuple[Array, Array]] = field(default_factory=list)
    pending: list[tuple[Array, Array]] = field(default_factory=list)
    committed: int = 0

    @classmethod
    def load(cls, path: Path) -> Paired:
        if not path.is_file():
            return cls(path)
        raw = np.fromfile(path, dtype="<f8")
        pairs = raw[: len(raw) - len(raw) % 2].reshape(-1, 2)
        return cls(path, [(pairs[:, 0].copy(), pairs[:, 1].copy())], committed=len(pairs))

    @property
    def rows(self) -> int:
        return self.committed + sum(len(a) for a, _ in self.pending)

    def arrays(self) -> tuple[Array, Array]:
        """(champion, challenger) scores of the committed rows, as two arrays."""
        if len(self.chunks) != 1:
            joined = (
                (np.concatenate([a for a, _ in self.chunks]), np.concatenate([b for _, b in self.chunks]))
                if self.chunks
                else (np.empty(0), np.empty(0))
            )
            self.chunks = [joined]
        return self.chunks[0]

    def commit(self) -> None:
        if not self.pending:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as fh:
            for a, b in self.pending:
                fh.write(np.column_stack([a, b]).astype("<f8").tobytes())
        self.chunks += self.pending
        self.committed += sum(len(a) for a, _ in self.pending)
        self.pending = []


def record_of(v: ModelVersion) -> dict[str, Any]:
    rec = v.meta.get("lifecycle")
    return dict(rec) if isinstance(rec, dict) else {}
