"""Request rate and p50/p99 of a deployment from its replicas' Prometheus text.

References: the metrics a real serving app renders (``ServeMetrics``), numpy percentiles
of the observed latencies, and hand-computed Prometheus ``histogram_quantile`` answers.
"""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.server.deployments.metrics import MetricWindow, Sample, histogram_quantile, parse_sample, summarize
from modelyard.serving.metrics import ServeMetrics

PREDICT = "/v1/models/{name}/versions/{version}/predict"


def rendered(observations: dict[tuple[str, str, str], list[float]]) -> str:
    """/metrics text of a serving app that answered the given requests."""
    metrics = ServeMetrics(8)
    for (route, model, code), latencies in observations.items():
        for seconds in latencies:
            metrics.requests.labels(route=route, model=model, code=code).inc()
            metrics.latency.labels(route=route, model=model).observe(seconds)
    return metrics.render().decode()


def test_parse_counts_only_predict_routes_and_sums_models():
    text = rendered(
        {
            (PREDICT, "a", "200"): [0.003] * 5,
            ("/v1/models/{name}/predict", "b", "422"): [0.001] * 2,
            ("/healthz", "", "200"): [0.0001] * 40,  # the supervisor's own probes
            ("/metrics", "", "200"): [0.0002] * 40,
        }
    )
    sample = parse_sample(text, t=1.0)
    assert sample.requests == 7
    assert sample.errors == 2
    assert sample.buckets[-1] == (float("inf"), 7)
    assert dict(sample.buckets)[0.0025] == 2 and dict(sample.buckets)[0.005] == 7


def test_quantile_known_answers():
    buckets = [(0.1, 10.0), (0.2, 20.0), (float("inf"), 20.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.75, buckets) == pytest.approx(0.15)
    # A rank in the +Inf bucket: the highest finite bound (nothing is known above it).
    assert histogram_quantile(0.99, [(0.1, 5.0), (float("inf"), 10.0)]) == pytest.approx(0.1)
    assert histogram_quantile(0.5, []) is None
    assert histogram_quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None


def test_quantile_matches_numpy_for_uniform_latencies_inside_buckets():
    # Prometheus interpolates linearly inside a bucket, exact for uniformly spread values.
    latencies = list(np.linspace(0.0101, 0.0249, 1000)) + list(np.linspace(0.0251, 0.0499, 1000))
    sample = parse_sample(rendered({(PREDICT, "a", "200"): latencies}), t=0.0)
    for q in (0.25, 0.5, 0.9, 0.99):
        assert histogram_quantile(q, sample.buckets) == pytest.approx(np.percentile(latencies, 100 * q), rel=2e-3)


def test_window_rate_and_counter_reset():
    window = MetricWindow()
    window.add(Sample(t=0.0, requests=10, buckets=((0.01, 10.0), (float("inf"), 10.0))))
    window.add(Sample(t=10.0, requests=60, buckets=((0.01, 40.0), (float("inf"), 60.0))))
    seconds, gained = window.delta(30.0)
    assert seconds == 10.0 and gained.requests == 50
    assert gained.buckets == ((0.01, 30.0), (float("inf"), 50.0))
    window.add(Sample(t=12.0, requests=3))  # a restarted process counts from zero again
    assert window.delta(30.0) is None and window.latest.requests == 3


def test_summarize_adds_replicas_and_falls_back_to_lifetime_latency():
    fast, slow = MetricWindow(), MetricWindow()
    fast.add(parse_sample(rendered({}), t=0.0))
    fast.add(parse_sample(rendered({(PREDICT, "a", "200"): [0.002] * 30}), t=10.0))
    slow.add(parse_sample(rendered({}), t=0.0))
    slow.add(parse_sample(rendered({(PREDICT, "a", "200"): [0.04] * 9, (PREDICT, "a", "503"): [0.04]}), t=10.0))
    got = summarize([fast, slow], window_s=30.0)
    assert got["requests_per_s"] == pytest.approx(4.0)  # (30 + 10) requests in 10 s
    assert got["requests_total"] == 40
    assert got["error_rate"] == pytest.approx(1 / 40)
    assert 1.0 <= got["p50_ms"] <= 2.5 and 25.0 <= got["p99_ms"] <= 50.0
    assert got["latency_scope"] == "window"

    quiet = MetricWindow()
    text = rendered({(PREDICT, "a", "200"): [0.002] * 4})
    quiet.add(parse_sample(text, t=0.0))
    quiet.add(parse_sample(text, t=10.0))  # no new requests in the window
    got = summarize([quiet])
    assert got["requests_per_s"] == 0.0 and got["latency_scope"] == "lifetime"
    assert 1.0 <= got["p50_ms"] <= 2.5
    assert summarize([])["p50_ms"] is None
