"""Deployments: the stored desired state, the supervisor and its replicas, their metrics, ``/v1/deployments``."""
