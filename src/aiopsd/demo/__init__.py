"""`aiopsd demo`: a real Prometheus + Alertmanager, a workload with injected incidents, the daemon."""
