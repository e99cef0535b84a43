"""Where data comes from: Prometheus polling, prediction logs, Alertmanager webhooks."""
