"""Backtesting detectors on labelled CSV series and scoring them the NAB way."""
