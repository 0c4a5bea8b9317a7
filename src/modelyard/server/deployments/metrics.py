"""Request rate and latency of a deployment, from its replicas' Prometheus ``/metrics``.

Each replica is a ``modelyard serve`` process (``modelyard.serving.metrics``): its
``modelyard_requests_total`` counter and ``modelyard_request_latency_seconds`` histogram
are cumulative since the replica started. The supervisor scrapes them every few seconds
and keeps a short window of samples per replica, so a rate is a difference of two
samples divided by the time between them, as Prometheus's ``rate()`` does, and p50/p99
are read from the bucket differences over the window with Prometheus's
``histogram_quantile`` interpolation. Only the predict routes count: the supervisor's
own probes (``/healthz``, ``/readyz``, ``/metrics``) are left out.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Sample", "parse_sample", "histogram_quantile", "MetricWindow", "summarize"]

_REQUESTS = "modelyard_requests_total"
_BUCKET = "modelyard_request_latency_seconds_bucket"


def _is_predict(labels: dict[str, str]) -> bool:
    return labels.get("route", "").endswith("/predict")


@dataclass(frozen=True)
class Sample:
    """Cumulative predict-route counts of one replica at time ``t`` (monotonic seconds)."""

    t: float
    requests: float = 0.0
    errors: float = 0.0  # answers with a status >= 400
    buckets: tuple[tuple[float, float], ...] = ()  # (upper bound, cumulative count), ascending


def parse_sample(text: str, t: float) -> Sample:
    """One scrape of a replica's ``/metrics`` text, summed over models and routes."""
    requests = errors = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if not _is_predict(s.labels):
                continue
            if s.name == _REQUESTS:
                requests += s.value
                if s.labels.get("code", "200")[:1] in ("4", "5"):
                    errors += s.value
            elif s.name == _BUCKET:
                bound = float(s.labels["le"])  # "+Inf" parses to inf
                buckets[bound] = buckets.get(bound, 0.0) + s.value
    return Sample(t=t, requests=requests, errors=errors, buckets=tuple(sorted(buckets.items())))


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of cumulative ``(upper bound, count)`` buckets; None without data.

    Prometheus's rule: find the bucket holding rank ``q * total`` and interpolate linearly
    inside it (the first bucket starts at 0); a rank in the ``+Inf`` bucket returns the
    highest finite bound, since nothing is known above it.
    """
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank and count > lower_count:
            if math.isinf(bound):
                return lower_bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


@dataclass
class MetricWindow:
    """The recent samples of one replica process (a restarted process gets a new window)."""

    keep_s: float = 120.0
    samples: deque[Sample] = field(default_factory=deque)

    def add(self, sample: Sample) -> None:
        if self.samples and sample.requests < self.samples[-1].requests:
            self.samples.clear()  # counters went back: a new process behind the same slot
        self.samples.append(sample)
        while len(self.samples) > 2 and sample.t - self.samples[0].t > self.keep_s:
            self.samples.popleft()

    @property
    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def delta(self, window_s: float) -> tuple[float, Sample] | None:
        """(seconds covered, counts gained) over about the last ``window_s`` seconds."""
        if len(self.samples) < 2:
            return None
        last = self.samples[-1]
        first = next((s for s in self.samples if last.t - s.t <= window_s), self.samples[-2])
        if first is last:
            first = self.samples[-2]
        gained = _minus(last.buckets, first.buckets)
        return last.t - first.t, Sample(
            t=last.t, requests=last.requests - first.requests, errors=last.errors - first.errors, buckets=gained
        )


def _minus(a: Sequence[tuple[float, float]], b: Sequence[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    earlier = dict(b)
    return tuple((bound, count - earlier.get(bound, 0.0)) for bound, count in a)


def _plus(parts: Iterable[Sequence[tuple[float, float]]]) -> tuple[tuple[float, float], ...]:
    total: dict[float, float] = {}
    for buckets in parts:
        for bound, count in buckets:
            total[bound] = total.get(bound, 0.0) + count
    return tuple(sorted(total.items()))


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def summarize(windows: Iterable[MetricWindow], window_s: float = 30.0) -> dict[str, Any]:
    """Deployment-wide numbers: rates add over replicas, histograms add bucket-wise.

    ``p50_ms``/``p99_ms`` cover the window when it saw requests, else every request since
    the replicas started (``latency_scope`` says which), so a quiet deployment still shows
    what its last requests took.
    """
    windows = list(windows)
    rate = errors = 0.0
    in_window: list[Sample] = []
    for w in windows:
        found = w.delta(window_s)
        if found is not None and found[0] > 0:
            seconds, gained = found
            rate += gained.requests / seconds
            errors += gained.errors
            in_window.append(gained)
    latest = [w.latest for w in windows if w.latest is not None]
    total = sum(s.requests for s in latest)
    window_requests = sum(s.requests for s in in_window)
    buckets, scope = _plus(s.buckets for s in in_window), "window"
    if window_requests <= 0:
        buckets, scope = _plus(s.buckets for s in latest), "lifetime"
    return {
        "requests_total": int(total),
        "requests_per_s": round(rate, 4),
        "error_rate": round(errors / window_requests, 4) if window_requests > 0 else 0.0,
        "p50_ms": _ms(histogram_quantile(0.5, buckets)),
        "p99_ms": _ms(histogram_quantile(0.99, buckets)),
        "latency_scope": scope if buckets and buckets[-1][1] > 0 else None,
        "window_s": window_s,
    }
