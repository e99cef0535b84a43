"""Drift tests for tabular windows against a reference profile."""
