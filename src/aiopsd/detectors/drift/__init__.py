"""Data drift of tabular windows against a reference profiled once.

``profile_reference(df, ...)`` sorts numeric columns and counts categories once;
``test_window(profile, window_df)`` runs per-column two-sample tests (KS and
rank-sum for numeric, pooled chi-squared for categorical, Fisher for missing
rate), PSI as effect size, Holm across all tests of the window, prediction
drift (the prediction column is a column like the others) and performance drift
when the window has labels. Pure functions: no I/O, no clock.
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

__all__ = ["DEFAULT_ALPHA", "ColumnDrift", "ColumnProfile", "DriftResult", "PerformanceDrift",
           "PerformanceProfile", "ReferenceProfile", "TestStat", "profile_reference", "test_window"]
