"""Prometheus watches: range queries (client) -> series -> detector -> incident -> Finding (watch)."""
