"""One model version as the server sees it: decode → batch → predict → encode hooks.

``ServedModel`` wraps a Predictor (or anything with its methods), the backend that runs
its forward pass, and the DynamicBatcher that coalesces its requests.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch

from modelyard.errors import InputError, InvalidInstancesError, UnsupportedMediaTypeError
from modelyard.serving.backends import BackendChoice, select_backend
from modelyard.serving.batcher import DynamicBatcher
from modelyard.serving.codec import audio_array, encode_predictions, image_array, instances_array, text_array
from modelyard.serving.config import ServeConfig
from modelyard.serving.metrics import ServeMetrics
from modelyard.serving.ranking import Ranking, apply_ranking, parse_ranking

__all__ = ["ServedModel"]

log = logging.getLogger(__name__)


class ServedModel:
    """A Predictor behind a batcher; the app keeps one per served ``name:version``."""

    def __init__(
        self, predictor: Any, config: ServeConfig, metrics: ServeMetrics, *, backend: BackendChoice | None = None
    ) -> None:
        self.predictor = predictor
        self.name: str = predictor.version.name
        self.version: int = int(predictor.version.version)
        self.ref: str = predictor.ref
        schema = predictor.schema()
        self.input_shape: list[int] = list(predictor.input_shape)
        self.input_dtype: str = schema.get("input_dtype", "float32")
        self.task: str = predictor.task
        pipeline = getattr(predictor, "pipeline", None)
        self.text: bool = getattr(pipeline, "kind", None) == "text"  # instances are strings
        self.image: bool = predictor.meta.get("kind") == "image"  # ?heatmap= draws over its inputs
        self.sample_rate, self.audio_align = _audio_input(predictor)  # WAV uploads: None when not an audio model
        self.config = config
        self.choice = backend or select_backend(predictor, config.backend, max_batch_size=config.max_batch_size)
        self.metrics = metrics
        self.batcher = DynamicBatcher(
            self.choice.backend.predict_array,
            max_batch_size=config.max_batch_size,
            max_wait_ms=config.max_wait_ms,
            max_queue=config.max_queue,
            timeout_s=config.timeout_s,
            name=self.ref,
            on_batch=metrics.batch_observer(self.name),
        )
        metrics.watch_queue(self.name, lambda: self.batcher.queue_depth)
        self.monitor = _monitor(self, config, metrics)

    # -- hooks: decode (body → raw instances) → features ----------------------------------------
    def decode_json(self, payload: Any) -> np.ndarray:
        if self.text:
            return text_array(payload, max_chars=self.config.max_text_chars)
        return instances_array(payload, self.input_shape, self.input_dtype)

    def decode_images(self, images: list[tuple[str, bytes]]) -> np.ndarray:
        arrays = [
            image_array(data, self.input_shape, source=source, max_pixels=self.config.max_image_pixels)
            for source, data in images
        ]
        return np.stack(arrays)

    def decode_audio(self, files: list[tuple[str, bytes]]) -> np.ndarray:
        if self.sample_rate is None:
            raise UnsupportedMediaTypeError(
                f"Model {self.ref} does not take audio: its input is {self.input_shape}, not raw samples "
                "(a network starting with a logmel or mfcc layer); send JSON instances"
            )
        config = self.config
        arrays = [
            audio_array(
                data,
                self.input_shape[0],
                source=source,
                sample_rate=self.sample_rate,
                max_seconds=config.max_audio_seconds,
                resample=config.resample_audio,
                align=self.audio_align,
            )
            for source, data in files
        ]
        return np.stack(arrays)

    def features(self, raw: np.ndarray) -> torch.Tensor:
        """Raw instances → model-ready tensor through the model's fitted preprocessing."""
        try:
            return self.predictor.preprocess(raw)
        except InvalidInstancesError:
            raise
        except InputError as exc:
            raise InvalidInstancesError(exc.message, field=exc.field) from None

    # -- predict → encode -------------------------------------------------------------------
    def ranking(self, query: bytes) -> Ranking | None:
        """``top_k`` / ``min_confidence`` from a predict request's query string (422 when invalid)."""
        if not query:
            return None
        names = self.predictor.class_names
        classes = len(names) if names else int(np.prod(self.predictor.network.output_shape))
        return parse_ranking(query, self.task, classes, image=self.image)

    async def predict(self, features: torch.Tensor, ranking: Ranking | None = None) -> dict[str, Any]:
        """The predict route's answer for ``features`` (ranked as ``ranking`` says; its heatmaps are
        ``add_heatmaps``')."""
        monitor, request_id = self.monitor, None
        if monitor is not None and monitor.log.sampled():  # the only cost of an unsampled request: one coin
            started = time.perf_counter()
            out = await self.batcher.submit(features)
            request_id = monitor.log.record(features, out, time.perf_counter() - started)
        else:
            out = await self.batcher.submit(features)  # this request's rows of the batch's numpy outputs
        records, warnings = encode_predictions(out, self.task, self.predictor.labels_from)
        if ranking is not None:
            apply_ranking(records, ranking, self.predictor.class_names)
        if warnings:
            self.metrics.nonfinite.labels(model=self.name).inc(sum(1 for r in records if _has_null(r)))
        return {
            "model": self.name,
            "version": self.version,
            "ref": self.ref,
            "backend": self.choice.backend.name,
            "predictions": records,
            "warnings": warnings,
            **({"request_id": request_id} if request_id is not None else {}),
        }

    async def add_heatmaps(
        self, answer: dict[str, Any], raw: np.ndarray, method: str, slots: Any, *, started: float
    ) -> None:
        """``heatmap_png`` on each of ``answer``'s predictions: ``method``'s attributions of ``raw`` for the
        predicted class, explained in ``slots`` (the explain routes' queue and cost cap) by the request's
        timeout counted from ``started`` (time.monotonic()); ``answer["heatmap"]`` names the method."""
        from modelyard.explaining.api import ExplainOptions

        options = ExplainOptions.make(method=method).model_dump()
        result = (await slots.explain(self, raw, options, started + self.config.timeout_s)).to_dict()
        for record, explained in zip(answer["predictions"], result["explanations"], strict=True):
            record["heatmap_png"] = explained["heatmap_png"]
        answer["heatmap"] = {"method": result["method"], "explained_output": result["explained_output"]}

    async def start(self) -> None:
        """Start the batch worker and run one forward pass so the first request is not slow."""
        network = self.predictor.network
        dtype = torch.int64 if network.input_dtype == torch.int64 else torch.float32
        await self.batcher.start(torch.zeros((1, *network.input_shape), dtype=dtype))

    def describe(self, latest: bool) -> dict[str, Any]:
        base = f"/v1/models/{self.name}"
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "latest": latest,
            "task": self.task,
            "input_schema": self.predictor.schema(),
            "backend": self.choice.info,
            "batching": {
                "max_batch_size": self.config.max_batch_size,
                "max_wait_ms": self.config.max_wait_ms,
                "max_queue": self.config.max_queue,
                "timeout_s": self.config.timeout_s,
            },
            "endpoints": [f"{base}/versions/{self.version}/predict"] + ([f"{base}/predict"] if latest else []),
        }


def _monitor(served: ServedModel, config: ServeConfig, metrics: ServeMetrics) -> Any:
    """The version's monitor with ``--monitor-sample`` (None without it, or without a stored reference)."""
    if config.monitor_sample <= 0:
        return None
    from modelyard.monitoring.reference import load_reference
    from modelyard.serving.monitor import ModelMonitor

    version = getattr(served.predictor, "version", None)
    reference = load_reference(version) if hasattr(version, "path") else None
    if reference is None:
        log.warning("monitor: %s has no reference.safetensors (registered before it); not monitored", served.ref)
        return None
    monitor = ModelMonitor(served, reference, config, metrics)
    metrics.watch_monitor(served.name, served.version, lambda: monitor.cpu_s)
    return monitor


def _has_null(record: dict[str, Any]) -> bool:
    values = record.get("probabilities") or record.get("value") or []
    return any(v is None for v in values)


def _audio_input(predictor: Any) -> tuple[int | None, str]:
    """(sample rate, pad/trim alignment) of a model on raw audio, from its spec; (None, ...) otherwise."""
    from modelyard.nn.layers.audio import input_sample_rate

    spec = getattr(predictor, "spec", None)
    if spec is None or len(getattr(predictor, "input_shape", ())) != 1:
        return None, "start"
    rate = input_sample_rate(spec.model.layers)
    return rate, str(spec.data.source.options.get("align", "start"))  # the data source's pad/trim
