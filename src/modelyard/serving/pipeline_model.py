"""A voice pipeline as the server sees it: the predict routes' hooks over ``modelyard.voice.VoicePipeline``.

It answers the same predict routes as a model (``routes.py``), with audio only: a WAV/FLAC
body or multipart WAV/FLAC files, decoded with the same limits as an audio model's uploads
(``--max-audio-seconds``, ``--resample-audio``, the body size). One upload gives the pipeline's
answer itself; several give ``{"predictions": [...]}``. Utterances run in worker threads, at most
``max_queue`` waiting (then 503), each within ``timeout_s`` (then 504).
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from modelyard.errors import (
    InvalidInstancesError,
    MalformedRequestError,
    QueueFullError,
    RequestTimeoutError,
    UnsupportedMediaTypeError,
)
from modelyard.serving.config import ServeConfig

__all__ = ["ServedPipeline"]


class ServedPipeline:
    """One pipeline version behind the predict routes."""

    monitor = None  # no request log: the inputs are recordings
    predictor = None
    is_pipeline = True

    def __init__(self, pipeline: Any, config: ServeConfig) -> None:
        self.pipeline = pipeline
        self.name, self.version, self.ref = pipeline.name, int(pipeline.number), pipeline.ref
        self.sample_rate: int = pipeline.sample_rate
        self.config = config
        self._waiting = 0

    def _audio_only(self) -> UnsupportedMediaTypeError:
        return UnsupportedMediaTypeError(
            f"Pipeline {self.ref} takes speech: expected audio/wav, audio/flac or multipart/form-data WAV/FLAC "
            f"files at {self.sample_rate} Hz"
        )

    def ranking(self, query: bytes) -> None:
        if query:
            raise InvalidInstancesError(
                f"Invalid query string: pipeline {self.ref} takes no options, received {query.decode('latin-1')!r}",
                field="query",
            )
        return None

    def decode_json(self, payload: Any) -> Any:
        raise self._audio_only()

    def decode_images(self, images: list[tuple[str, bytes]]) -> Any:
        raise self._audio_only()

    def decode_audio(self, files: list[tuple[str, bytes]]) -> list[np.ndarray]:
        from modelyard.audio_decode import AudioLimits, decode_audio

        limits = AudioLimits(
            max_seconds=self.config.max_audio_seconds, sample_rate=self.sample_rate, resample=self.config.resample_audio
        )
        return [
            decode_audio(
                data, source=source, limits=limits, error=MalformedRequestError, too_long=InvalidInstancesError
            )[0]
            for source, data in files
        ]

    def features(self, raw: list[np.ndarray]) -> list[np.ndarray]:
        return raw

    async def _run(self, samples: np.ndarray) -> dict[str, Any]:
        if self._waiting >= self.config.max_queue:
            raise QueueFullError(f"Pipeline {self.ref} has {self._waiting} utterances waiting; retry later")
        self._waiting += 1
        # Counted until its thread ends, not until the answer times out: an abandoned utterance still
        # holds the recognizer, so max_queue bounds the work running, not only the answers awaited.
        work = asyncio.ensure_future(asyncio.to_thread(self.pipeline.run, samples))
        work.add_done_callback(self._finished)
        try:
            return await asyncio.wait_for(asyncio.shield(work), self.config.timeout_s)
        except asyncio.TimeoutError:
            raise RequestTimeoutError(
                f"Pipeline {self.ref} took longer than {self.config.timeout_s:g} s (--timeout-s) for one utterance"
            ) from None

    def _finished(self, work: asyncio.Future[Any]) -> None:
        self._waiting -= 1
        if not work.cancelled():
            work.exception()  # retrieved, so an abandoned utterance's error is not logged as never retrieved

    async def predict(self, utterances: list[np.ndarray], ranking: None = None) -> dict[str, Any]:
        head = {"model": self.name, "version": self.version, "ref": self.ref, "kind": "pipeline"}
        answers = [await self._run(samples) for samples in utterances]
        return {**head, **answers[0]} if len(answers) == 1 else {**head, "predictions": answers}

    async def start(self) -> None:
        await asyncio.to_thread(self.pipeline.run, np.zeros(self.sample_rate // 4, dtype=np.float32))  # warm up

    async def close(self) -> None:
        return None

    def describe(self, latest: bool) -> dict[str, Any]:
        base = f"/v1/models/{self.name}"
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "latest": latest,
            "task": "pipeline",
            "input_schema": {
                "kind": "audio",
                "sample_rate": self.sample_rate,
                "max_seconds": self.config.max_audio_seconds,
                "content_types": ["audio/wav", "audio/flac", "multipart/form-data"],
            },
            "stages": self.pipeline.stages(),
            "backend": {"name": "pipeline"},
            "endpoints": [f"{base}/versions/{self.version}/predict"] + ([f"{base}/predict"] if latest else []),
        }
