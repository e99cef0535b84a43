"""The demo's ML model: a churn classifier whose inputs drift mid-run.

A synthetic but realistic tabular problem (numeric and categorical features, a
few missing values). Before the drift the logged rows follow the reference
distribution; after it, monthly charges rise, long contracts become rare and the
relation between features and churn shifts, so the served model degrades and a
model retrained on recent labelled rows does better.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from aiopsd.model_store import ModelStore, StoreSpec

CONTRACTS = ["month-to-month", "one-year", "two-year"]
PAYMENTS = ["card", "bank-transfer", "invoice"]
FEATURES = ["tenure_months", "monthly_charges", "support_calls", "contract", "payment"]


def make_rows(n: int, rng: np.random.Generator, drift: float = 0.0) -> pd.DataFrame:
    """``n`` rows with a ``churn`` label; ``drift`` in [0, 1] moves inputs and concept."""
    contract_p = np.array([0.5, 0.3, 0.2]) * (1 - drift) + np.array([0.85, 0.12, 0.03]) * drift
    tenure = rng.gamma(2.0, 12.0, n).round(1)
    charges = rng.normal(65 + 15 * drift, 18, n).clip(15, 200).round(2)
    calls = rng.poisson(1.2 + 0.8 * drift, n)
    contract = rng.choice(CONTRACTS, n, p=contract_p / contract_p.sum())
    payment = rng.choice(PAYMENTS, n, p=[0.5, 0.3, 0.2])
    long_contract = (contract != "month-to-month").astype(float)
    # After the drift, support calls matter much more (a new outage-prone region).
    logit = (
        -1.0
        - 0.04 * tenure
        + 0.025 * (charges - 65)
        + (0.3 + 0.8 * drift) * calls
        - 1.5 * long_contract * (1 - 0.6 * drift)
    )
    churn = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    df = pd.DataFrame(
        {
            "tenure_months": tenure,
            "monthly_charges": charges,
            "support_calls": calls,
            "contract": contract,
            "payment": payment,
            "churn": churn,
        }
    )
    missing = rng.random(n) < 0.02
    df.loc[missing, "payment"] = None
    return df


def churn_pipeline() -> Any:
    """The served model: scaling + one-hot encoding + logistic regression (scikit-learn)."""
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = make_column_transformer(
        (StandardScaler(), ["tenure_months", "monthly_charges", "support_calls"]),
        (
            make_pipeline(
                SimpleImputer(strategy="constant", fill_value="missing"), OneHotEncoder(handle_unknown="ignore")
            ),
            ["contract", "payment"],
        ),
    )
    return make_pipeline(pre, LogisticRegression(max_iter=1000))


def set_up_model(
    model_dir: Path, reference_csv: Path, seed: int = 3, *, score: bool = False, store: ModelStore | None = None
) -> None:
    """Train version 1, serve it (in ``store``, else the directory ``model_dir``), and write the reference
    window (features, prediction, label; with ``score``, the model's probability of churn too, for
    performance estimation)."""
    from aiopsd.model_store.directory import DirectoryStore

    store = store if store is not None else DirectoryStore(model_dir)
    rng = np.random.default_rng(seed)
    train = make_rows(3000, rng)
    model = churn_pipeline().fit(train[FEATURES], train["churn"])
    ref = make_rows(2000, rng)
    acc = float((model.predict(ref[FEATURES]) == ref["churn"]).mean())
    v = store.register(
        model,
        metrics={"metric": "accuracy", "holdout": {"candidate": acc}},
        meta={"job": "demo", "data": "synthetic reference"},
        status="candidate",
    )
    store.promote(v.number, reason="initial model")
    out = ref[FEATURES].copy()
    out["prediction"] = model.predict(ref[FEATURES])
    if score:
        out["score"] = model.predict_proba(ref[FEATURES])[:, 1]
    out["label"] = ref["churn"]
    reference_csv.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(reference_csv, index=False)


@dataclass
class PredictionLogWriter:
    """Appends one JSONL row per prediction with its true label, as a model server would.

    Like a server, it serves ``model_dir/current`` and reloads it when it changes,
    so a promoted retrain shows up in the log's accuracy.
    """

    path: Path
    model_dir: Path
    rate: float = 25.0
    seed: int = 11
    drift_at: float | None = None
    drift_ramp: float = 10.0
    score: bool = False
    """Also log the model's probability of churn as the feature ``score`` (for CBPE)."""
    written: int = 0
    # Serve from this model store (e.g. MLflow's champion alias) instead of the directory model_dir.
    store: StoreSpec | None = None
    served_version: int | None = None
    _model: Any = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def drift_level(self, now: float) -> float:
        if self.drift_at is None or now < self.drift_at:
            return 0.0
        return min(1.0, (now - self.drift_at) / self.drift_ramp)

    def start(self) -> threading.Thread:
        t = threading.Thread(target=self._run, name="demo-predictions", daemon=True)
        t.start()
        return t

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        rng = np.random.default_rng(self.seed)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while not self._stop.is_set():
            now = time.time()
            batch = max(1, int(self.rate))
            df = make_rows(batch, rng, self.drift_level(now))
            self._reload()
            preds = self._model.predict(df[FEATURES])
            scores = self._model.predict_proba(df[FEATURES])[:, 1] if self.score else None
            with self.path.open("a", encoding="utf-8") as fh:
                for i, row in enumerate(df.to_dict("records")):
                    features = {
                        k: (None if isinstance(row[k], float) and np.isnan(row[k]) else row[k]) for k in FEATURES
                    }
                    if scores is not None:
                        features["score"] = round(float(scores[i]), 6)
                    fh.write(
                        json.dumps(
                            {
                                "timestamp": now,
                                "model": "churn",
                                "version": str(self.served_version),
                                "prediction_id": uuid.uuid4().hex,
                                "features": features,
                                "prediction": int(preds[i]),
                                "label": int(row["churn"]),
                            },
                            default=_json,
                        )
                        + "\n"
                    )
            self.written += batch
            self._stop.wait(1.0)

    def _reload(self) -> None:
        from aiopsd.model_store import open_store
        from aiopsd.model_store.directory import DirectoryStore

        store = open_store(self.store) if self.store is not None else DirectoryStore(self.model_dir)
        if store.current() != self.served_version or self._model is None:
            self.served_version, self._model = store.load()


def _json(value: object) -> object:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(type(value).__name__)
