"""``/v1/federations`` and the client protocol ``/v1/federated/`` (docs/federated.md)."""
