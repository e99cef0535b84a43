"""Pure numerics: anomaly detectors for series, drift tests for tabular windows.

Nothing here does I/O or reads a clock; everything is passed in.
"""
