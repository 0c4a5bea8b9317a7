"""Production monitoring: the training reference stored at registration and drift checks against it.

``reference.py`` builds ``reference.safetensors`` (per-feature statistics of the training split and
the model's softmax outputs on a held-out sample); ``drift.py`` compares a window of served
requests with it (docs/monitoring.md).
"""
