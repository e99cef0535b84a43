"""Human-readable evidence rendered from detector results (I/O lives here, not in detectors)."""
