"""Training jobs: the queue table's store, submissions, leases, workers, the reaper, live events, ``/v1/jobs``."""
