"""Simulated traffic for measuring a monitor: windows of held-out images, known shifts, the served checks.

What ``benchmarks/monitor_bench.py`` and its reduced test measure: how often a window of unshifted
traffic raises an alert (the false-alarm rate) and how often a shifted one does (the detection
rate). Windows are drawn from the evaluation split less the rows whose model outputs the reference
stores (``reference.output_rows``): a window sharing rows with the reference would look more like
it than new traffic does. Each window goes through the served monitor's own code: every image is
one request recorded in a ``RequestLog`` (as ``ServedModel.predict`` records it), then
``ModelMonitor.report`` and its ``alerts``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np

__all__ = [
    "CHECKS",
    "Tally",
    "alarms_by_check",
    "check_window",
    "gaussian_noise",
    "traffic_pool",
    "translate_half",
    "window_monitor",
]

# The alert lines of ``serving.monitor.alerts_of`` by the check that raised them.
CHECKS = ("output shift", "feature drift", "out of range", "missing values", "schema")


def translate_half(
    images: np.ndarray, rng: np.random.Generator, *, pixels: int = 2, direction: int | None = None
) -> np.ndarray:
    """Half of ``images`` (square, ``[n, h, w]`` or flat ``[n, h * w]``) moved ``pixels`` zero-filled, right (0),
    left (1), down (2) or up (3): all the same ``direction`` (a moved camera), or one at random per image."""
    shape, side = images.shape, round(float(np.sqrt(images[0].size)))
    images = images.reshape(len(images), side, side)
    out = images.copy()
    moved = rng.choice(len(images), size=len(images) // 2, replace=False)
    directions = rng.integers(0, 4, size=len(moved)) if direction is None else np.full(len(moved), direction)
    for i, way in zip(moved, directions):
        axis, step = (1, 0)[way // 2], (pixels, -pixels)[way % 2]
        shifted = np.roll(images[i], step, axis=axis)
        edge = slice(0, pixels) if step > 0 else slice(-pixels, None)  # what rolled in from the other side
        if axis == 1:
            shifted[:, edge] = 0
        else:
            shifted[edge, :] = 0
        out[i] = shifted
    return out.reshape(shape)


def gaussian_noise(
    images: np.ndarray, rng: np.random.Generator, *, sigma: float = 0.05, scale: float = 255.0
) -> np.ndarray:
    """``images`` plus N(0, sigma) noise in units of the pixel range ``scale``, clipped back into [0, scale]."""
    noisy = images.astype(np.float64) + rng.normal(0.0, sigma * scale, size=images.shape)
    return np.clip(noisy, 0.0, scale)


def traffic_pool(x_test: np.ndarray, *, seed: int) -> np.ndarray:
    """The evaluation split without the rows the reference took its outputs on (``seed``: the spec's seed)."""
    from modelyard.monitoring.reference import output_rows

    keep = np.ones(len(x_test), dtype=bool)
    keep[output_rows(len(x_test), seed).numpy()] = False
    return x_test[keep]


def window_monitor(predictor: Any, reference: Any, window: int) -> Any:
    """A ``ModelMonitor`` of ``predictor`` as ``modelyard serve --monitor-sample 1`` builds it (no background task)."""
    from modelyard.serving.config import ServeConfig
    from modelyard.serving.monitor import ModelMonitor

    served = SimpleNamespace(name=predictor.version.name, version=predictor.version.version, ref=predictor.ref)
    served.predictor = predictor
    config = ServeConfig(monitor_sample=1.0, monitor_window=window, monitor_capacity=max(10_000, window))
    return ModelMonitor(served, reference, config, gauges=None)


def check_window(monitor: Any, predictor: Any, raw: np.ndarray) -> dict[str, Any]:
    """Serve ``raw`` (one request per instance) into ``monitor``'s log and report the last ``len(raw)`` of it."""
    features = predictor.preprocess(raw.reshape(len(raw), *predictor.input_shape))
    outputs = predictor.predict_tensor(features).float().numpy()
    for i in range(len(raw)):
        monitor.log.record(features[i : i + 1], outputs[i : i + 1], 0.0)
    return monitor.report(len(raw))


def alarms_by_check(report: dict[str, Any]) -> set[str]:
    """Which of ``CHECKS`` raised an alert in ``report``."""
    return {check for check in CHECKS for line in report["alerts"] if line.startswith(check + ":")}


@dataclass
class Tally:
    """Windows checked, windows with any alert, and windows per check that alerted."""

    windows: int = 0
    alarms: int = 0
    by_check: dict[str, int] = field(default_factory=dict)

    def add(self, report: dict[str, Any]) -> None:
        self.windows += 1
        self.alarms += bool(report["alerts"])
        for check in alarms_by_check(report):
            self.by_check[check] = self.by_check.get(check, 0) + 1

    @property
    def rate(self) -> float:
        return self.alarms / self.windows if self.windows else float("nan")

    def ci(self, level: float = 0.95) -> tuple[float, float]:
        """Clopper-Pearson (exact) binomial interval of the alarm rate."""
        from scipy.stats import binomtest

        interval = binomtest(self.alarms, self.windows).proportion_ci(confidence_level=level, method="exact")
        return float(interval.low), float(interval.high)
