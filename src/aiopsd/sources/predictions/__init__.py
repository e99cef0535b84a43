"""Prediction logs: tail files (tail, cursor) -> rows -> windows -> drift test -> Finding (watch)."""
