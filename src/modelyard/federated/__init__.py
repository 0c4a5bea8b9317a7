"""Federated learning: one model trained from data split among clients (docs/federated.md).

``spec.py`` holds the ``federated:`` spec section, ``partition.py`` splits a training set among
simulated clients, ``strategies.py`` aggregates client weights (FedAvg, FedProx, FedAdam),
``updates.py`` turns them into flat update vectors for ``dp.py`` (client-level DP: clipping, noise,
epsilon) and ``secure.py`` (pairwise-masked secure aggregation), and ``simulation.py`` runs the
rounds on one machine as a tracked, registered run.
"""
