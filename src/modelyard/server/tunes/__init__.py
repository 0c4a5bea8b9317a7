"""``/v1/tunes``: hyperparameter searches whose trials are jobs on the control plane's workers."""
