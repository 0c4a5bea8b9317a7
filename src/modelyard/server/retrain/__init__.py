"""Retraining queued by the monitoring alerts of a deployment (docs/monitoring.md)."""
