"""Federated learning: one model trained from data split among clients (docs/federated.md).

``spec.py`` holds the ``federated:`` spec section, ``partition.py`` splits a training set among
simulated clients, ``strategies.py`` aggregates client weights (FedAvg, FedProx, FedAdam),
``updates.py`` turns them into flat update vectors for ``dp.py`` (client-level DP: clipping, noise,
epsilon) and ``secure.py`` (pairwise-masked secure aggregation); ``rounds.py`` holds the client step
and the server step both modes share: ``simulation.py`` runs the rounds on one machine as a tracked,
registered run, ``deployed.py`` runs them as the control plane's aggregator job with each client a
``join.py`` process (``modelyard federated join``), the two meeting in ``federation.py``'s folder.
"""
