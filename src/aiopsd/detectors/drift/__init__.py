"""Data drift of tabular windows against a reference profiled once.

``profile_reference(df, ...)`` sorts numeric columns and counts categories once;
``test_window(profile, window_df)`` runs per-column two-sample tests (rank-sum
and KS for numeric columns, exact one-sided per-value tests of their point
masses; exact one-sided per-category tests and a pooled chi-squared test for
categorical ones; an exact one-sided missing-rate test for both), PSI as effect
size, a weighted Bonferroni budget per column then per test
(:mod:`aiopsd.detectors.drift.budget`), prediction drift (the prediction column
is a column like the others) and performance drift when the window has labels.
Pure functions: no I/O, no clock.
"""

from aiopsd.detectors.drift.profile import (
    ColumnProfile,
    PerformanceProfile,
    ReferenceProfile,
    profile_reference,
)
from aiopsd.detectors.drift.window import (
    DEFAULT_ALPHA,
    ColumnDrift,
    DriftResult,
    PerformanceDrift,
    TestStat,
    test_window,
)

__all__ = [
    "DEFAULT_ALPHA",
    "ColumnDrift",
    "ColumnProfile",
    "DriftResult",
    "PerformanceDrift",
    "PerformanceProfile",
    "ReferenceProfile",
    "TestStat",
    "profile_reference",
    "test_window",
]
