"""Benchmarks that print tables (not timed tests). Run with `make bench` or one script each."""
