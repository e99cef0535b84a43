"""The cross-validation protocol of ``bench/anomaly.py``: groups, cached scores, leave-one-group-out selection.

* *Groups.* Each nab-dev category is a group (``artificialNoAnomaly`` included:
  it has no windows, its false positives cost score), and each generated
  family (``aiopsd.backtest.corpus``) is a group.
* *Candidates.* A detector comes with a small grid of parameter settings.
* *Selection.* For a held-out group, the setting is the one that maximises the
  mean of the NAB standard score (own threshold, ``anomaly_score >= 1``) of the
  remaining nab-dev series and of the remaining generated series. The
  held-out group's series are then scored with that setting: *out of fold*.
  Out-of-fold scores of every group, pooled per corpus, are what is reported.
  *In fold*: the setting chosen on everything, scored on everything (optimistic).
* *Cache.* Scores per (detector, setting, corpus) are stored in a cache
  folder (``bench/.cache/anomaly/``), keyed by a hash of the detector sources,
  so only changed detectors are run again.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

import aiopsd.detectors.anomaly as anomaly_package
from aiopsd.backtest.corpus import generate
from aiopsd.backtest.data import discover, read_series, read_windows, windows_for
from aiopsd.backtest.nab import PROFILES, LabelledFile, NabResult, label_file, score_corpus
from aiopsd.detectors.anomaly import AnomalyDetector, make_detector

SOURCES = Path(anomaly_package.__file__).resolve().parent


@dataclass(frozen=True)
class Item:
    """One labelled series of a corpus (``nab`` or ``gen``) and its group."""

    corpus: str
    group: str
    name: str
    timestamps: np.ndarray
    values: np.ndarray
    labels: LabelledFile


def load_nab(root: Path) -> list[Item]:
    windows = read_windows(root / "windows.json")
    items = []
    for path, rel in discover([root / "data"]):
        s = read_series(path, rel)
        spans = windows_for(windows, s) or []
        items.append(
            Item(
                "nab",
                rel.parts[0],
                rel.as_posix(),
                s.timestamps,
                s.values,
                label_file(rel.as_posix(), s.timestamps, spans),
            )
        )
    return items


def load_generated(seed: int, per_family: int) -> list[Item]:
    return [Item("gen", g.family, g.name, g.timestamps, g.values, g.labels()) for g in generate(seed, per_family)]


Factory = Callable[..., AnomalyDetector]


def _code_hash(detector: str, factory: Factory | None = None) -> str:
    """The sources a detector's scores depend on: its module, the shared ones, and every module of the package."""
    module = Path(inspect.getfile(type((factory or partial(make_detector, detector))())))
    h = hashlib.sha256(module.read_bytes())
    for path in sorted(SOURCES.glob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


@dataclass
class Run:
    """Scores of one detector setting on every item, and the CPU time the ``update`` loop took."""

    detector: str
    params: dict[str, Any]
    scores: dict[str, np.ndarray]
    points: int
    seconds: float


def run(
    detector: str,
    params: dict[str, Any],
    items: Sequence[Item],
    cache: Path | None = None,
    factory: Factory | None = None,
) -> Run:
    """Stream every item through a fresh detector (``factory(**params)``, by default the registry's ``detector``)."""
    build = factory or partial(make_detector, detector)
    key = hashlib.sha256(
        json.dumps(
            [
                detector,
                params,
                _code_hash(detector, factory),
                [i.name for i in items],
                float(sum(np.nansum(i.values) for i in items)),
            ],
            sort_keys=True,
        ).encode()
    ).hexdigest()[:20]
    path = cache / f"{detector}-{key}.npz" if cache is not None else None
    if path is not None and path.exists():
        with np.load(path) as z:
            meta = json.loads(str(z["__meta__"]))
            return Run(
                detector, params, {i.name: z[f"s{k}"] for k, i in enumerate(items)}, meta["points"], meta["seconds"]
            )
    scores: dict[str, np.ndarray] = {}
    points, seconds = 0, 0.0
    for item in items:
        det = build(**params).fit(np.empty(0), np.empty(0))
        update = det.update
        ts, vs = item.timestamps.tolist(), item.values.tolist()
        t0 = time.process_time()
        out = [update(t, v).anomaly_score for t, v in zip(ts, vs, strict=True)]
        seconds += time.process_time() - t0
        points += len(out)
        scores[item.name] = np.array(out, dtype=np.float64)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"s{k}": scores[i.name] for k, i in enumerate(items)}
        arrays["__meta__"] = np.array(json.dumps({"points": points, "seconds": seconds}))
        np.savez(path, **arrays)  # type: ignore[arg-type]
    return Run(detector, params, scores, points, seconds)


def nab_score(r: Run, items: Sequence[Item], profile: int = 0) -> NabResult:
    return score_corpus([(i.labels, r.scores[i.name]) for i in items], PROFILES[profile], 1.0)


def _objective(r: Run, items: Sequence[Item]) -> float:
    parts = [
        nab_score(r, [i for i in items if i.corpus == c]).score
        for c in ("nab", "gen")
        if any(i.corpus == c for i in items)
    ]
    return float(np.mean(parts))


@dataclass
class Selection:
    """What the protocol found for one detector."""

    detector: str
    chosen: Run  # chosen on every group (in fold)
    out_of_fold: Run  # each group scored with the setting chosen without it
    picks: dict[str, dict[str, Any]]  # group -> setting chosen without it


def select(runs: Sequence[Run], items: Sequence[Item]) -> Selection:
    groups = sorted({(i.corpus, i.group) for i in items})
    chosen = max(runs, key=lambda r: _objective(r, items))
    oof: dict[str, np.ndarray] = {}
    picks: dict[str, dict[str, Any]] = {}
    for corpus, group in groups:
        train = [i for i in items if (i.corpus, i.group) != (corpus, group)]
        best = max(runs, key=lambda r: _objective(r, train))
        picks[f"{corpus}:{group}"] = best.params
        oof.update({i.name: best.scores[i.name] for i in items if (i.corpus, i.group) == (corpus, group)})
    return Selection(chosen.detector, chosen, Run(chosen.detector, {}, oof, chosen.points, chosen.seconds), picks)
