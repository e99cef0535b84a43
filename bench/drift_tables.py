"""The development bed of ``bench/drift.py``: 14 tables of different shapes, nothing downloaded.

Real tables ship with the packages (statsmodels ``datasets``, scikit-learn's
bundled ``load_*``); generated tables are seeded and cover the shapes the real
ones lack: skewed, zero-inflated, discrete, heavily tied, high-cardinality
(hundreds of values), mixed with missing values, and plain Gaussian (the hard
case for a 0.5 SD shift). ``TUNE`` names the tables the test weights were tuned
on (``bench/drift_cv.py``); every other table is held out and reported as such.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

TUNE = ("fair", "randhie", "gen_zero_inflated", "gen_high_card", "gen_skewed")
"""Tables the parameters were chosen on (``bench/drift_cv.py``); the rest are held out."""


@dataclass
class Data:
    name: str
    frame: pd.DataFrame
    numeric: list[str]
    categorical: list[str]
    source: str


def _label(c: str, v: object) -> str:
    return f"{c}={v:g}" if isinstance(v, int | float) else f"{c}={v}"


def _labelled(df: pd.DataFrame, cols: list[str]) -> None:
    for c in cols:
        df[c] = [_label(c, v) for v in df[c]]


def _real() -> list[Data]:
    import statsmodels.api as sm
    from sklearn import datasets as skd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fair = sm.datasets.fair.load_pandas().data
        rand = sm.datasets.randhie.load_pandas().data
        fert = sm.datasets.fertility.load_pandas().data
        anes = sm.datasets.anes96.load_pandas().data
    fcat = ["rate_marriage", "religious", "occupation", "occupation_husb"]
    _labelled(fair, fcat)
    rcat = ["idp", "hlthg", "hlthf", "hlthp", "lncoins"]
    _labelled(rand, rcat)
    years = [c for c in fert.columns if c.isdigit()]
    long = fert.melt(id_vars=["Country Code"], value_vars=years, var_name="year", value_name="fertility")
    long = long.rename(columns={"Country Code": "country"})
    long["year"] = long["year"].astype(int)
    acat = ["PID", "educ", "income", "vote"]
    anes = anes[["popul", "TVnews", "selfLR", "ClinLR", "DoleLR", "age", *acat]].copy()
    _labelled(anes, acat)
    digits = skd.load_digits(as_frame=True).frame
    pix = [c for c in digits.columns if c.startswith("pixel") and digits[c].std() > 2.0][:20]
    cancer = skd.load_breast_cancer(as_frame=True).frame
    ccols = list(cancer.columns[:12])
    diab = skd.load_diabetes(as_frame=True, scaled=False).frame
    diab["sex"] = diab["sex"].map(lambda v: f"sex={v:g}")
    return [
        Data("fair", fair, [c for c in fair.columns if c not in fcat], fcat, "statsmodels fair"),
        Data("randhie", rand, [c for c in rand.columns if c not in rcat], rcat, "statsmodels randhie"),
        Data(
            "fertility",
            long[["country", "year", "fertility"]],
            ["year", "fertility"],
            ["country"],
            "statsmodels fertility (long form, 219 countries)",
        ),
        Data("anes96", anes, ["popul", "TVnews", "selfLR", "ClinLR", "DoleLR", "age"], acat, "statsmodels anes96"),
        Data("digits", digits[pix], pix, [], "scikit-learn load_digits (20 pixels, 0-16)"),
        Data("breast_cancer", cancer[ccols], ccols, [], "scikit-learn load_breast_cancer (12 columns)"),
        Data("diabetes", diab, [c for c in diab.columns if c != "sex"], ["sex"], "scikit-learn load_diabetes"),
    ]


def _zipf_choice(rng: np.random.Generator, k: int, a: float, size: int, prefix: str) -> np.ndarray:
    w = 1.0 / np.arange(1, k + 1) ** a
    return np.array([f"{prefix}{i}" for i in rng.choice(k, size=size, p=w / w.sum())], dtype=object)


def _generated(rows: int, seed: int) -> list[Data]:
    rng = np.random.default_rng(seed)
    n = rows
    skewed = pd.DataFrame(
        {
            "latency_ms": rng.lognormal(3.0, 1.0, n),
            "bytes": (rng.pareto(1.5, n) + 1) * 100,
            "wait": rng.gamma(0.5, 2.0, n),
            "gap": rng.exponential(5.0, n),
            "device": rng.choice(["mobile", "desktop", "tablet"], n, p=[0.7, 0.25, 0.05]),
            "region": _zipf_choice(rng, 8, 1.2, n, "r"),
        }
    )
    rain = np.where(rng.random(n) < 0.65, 0.0, np.round(rng.gamma(0.8, 6.0, n), 1))
    zero = pd.DataFrame(
        {
            "precip_mm": rain,
            "snow_cm": np.where(rng.random(n) < 0.95, 0.0, np.round(rng.gamma(1.0, 3.0, n), 1)),
            "errors": np.where(rng.random(n) < 0.5, 0, rng.poisson(2.0, n)).astype(float),
            "delay_min": np.where(rng.random(n) < 0.6, 0.0, np.round(rng.lognormal(2.5, 1.0, n))),
            "weekday": rng.choice(["mon", "tue", "wed", "thu", "fri", "sat", "sun"], n),
        }
    )
    discrete = pd.DataFrame(
        {
            "visits": rng.poisson(3.0, n).astype(float),
            "clicks": rng.binomial(10, 0.3, n).astype(float),
            "rating": rng.choice([1, 2, 3, 4, 5], n, p=[0.05, 0.1, 0.2, 0.35, 0.3]).astype(float),
            "age": rng.integers(18, 90, n).astype(float),
            "children": rng.choice(6, n, p=[0.3, 0.3, 0.2, 0.1, 0.06, 0.04]),
            "plan": rng.choice(["free", "basic", "pro", "team"], n, p=[0.6, 0.25, 0.12, 0.03]),
        }
    )
    tied = pd.DataFrame(
        {
            "score": np.round(rng.normal(50, 2, n)),
            "half_steps": np.round(rng.uniform(0, 10, n) * 2) / 2,
            "temp_c": np.round(rng.normal(12, 8, n), 1),
            "pct": np.round(rng.beta(0.5, 0.5, n) * 100),
            "status": rng.choice(["ok", "retry"], n, p=[0.97, 0.03]),
        }
    )
    high = pd.DataFrame(
        {
            "airport": _zipf_choice(rng, 400, 1.1, n, "ap"),
            "merchant": _zipf_choice(rng, 250, 0.6, n, "m"),
            "country": _zipf_choice(rng, 60, 1.3, n, "c"),
            "amount": np.round(rng.lognormal(3, 1.2, n), 2),
            "distance_km": rng.gamma(2.0, 400.0, n),
        }
    )
    mixed = pd.DataFrame(
        {
            "income": np.where(rng.random(n) < 0.1, np.nan, rng.lognormal(10, 0.6, n)),
            "tenure": rng.integers(0, 120, n).astype(float),
            "active": rng.random(n) < 0.8,
            "segment": pd.Series(rng.choice(["a", "b", "c", "d", "e"], n)).mask(rng.random(n) < 0.05),
            "score": np.where(rng.random(n) < 0.03, np.nan, rng.normal(600, 80, n)),
            "channel": _zipf_choice(rng, 30, 1.0, n, "ch"),
        }
    )
    cov = 0.5 * np.ones((8, 8)) + 0.5 * np.eye(8)
    gauss = pd.DataFrame(rng.multivariate_normal(np.zeros(8), cov, n), columns=[f"x{i}" for i in range(8)])

    def d(name: str, f: pd.DataFrame, src: str) -> Data:
        num = [
            c
            for c in f.columns
            if pd.api.types.is_numeric_dtype(f[c].dtype) and not pd.api.types.is_bool_dtype(f[c].dtype)
        ]
        return Data(name, f, num, [c for c in f.columns if c not in num], src)

    return [
        d("gen_skewed", skewed, "lognormal, Pareto, gamma(0.5), exponential; 3 + 8 categories"),
        d("gen_zero_inflated", zero, "65 % / 95 % / 50 % / 60 % zeros, rounded"),
        d("gen_discrete", discrete, "Poisson, binomial, Likert, integer ages"),
        d("gen_tied", tied, "rounded normal / uniform / beta, binary 97/3"),
        d("gen_high_card", high, "400 / 250 / 60 Zipf categories, skewed amounts"),
        d("gen_mixed", mixed, "10 % / 3 % / 5 % missing, bool, 30 categories"),
        d("gen_gaussian", gauss, "8 correlated standard normals (rho 0.5)"),
    ]


def load_bed(seed: int = 11, rows: int = 8000) -> list[Data]:
    return _real() + _generated(rows, seed)
