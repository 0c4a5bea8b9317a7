"""Voice pipelines: audio → speech to text → intent → answer → speech, registered and served (docs/voice.md)."""

from modelyard.voice.pipeline import VoicePipeline
from modelyard.voice.register import register_pipeline
from modelyard.voice.spec import PipelineSpec, load_pipeline_spec

__all__ = ["VoicePipeline", "register_pipeline", "PipelineSpec", "load_pipeline_spec"]
