"""The pipeline spec: ``kind: pipeline`` and its stages, validated as every spec is (unknown keys refused).

```yaml
kind: pipeline
description: Voice assistant over the CLINC150 intents
stages:
  speech_to_text: {engine: pocketsphinx, language_model: domain, hot_words: [balance], wake_phrase: hey yard}
  intent: {model: clinc150-minilm-frozen:1}
  answer: {templates: clinc150_answers.yaml, default: "Sorry, I cannot help with that yet."}
  speech: {engine: flite, voice: slt}
```

A relative ``answer.templates`` path is read next to the spec file, at registration; the stored
version holds the templates themselves (``register.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from modelyard._validation import StrictModel, spec_error_from
from modelyard.errors import SpecError

__all__ = ["PipelineSpec", "SpeechToText", "Intent", "Answer", "Speech", "Stages", "load_pipeline_spec"]


class SpeechToText(StrictModel):
    engine: Literal["pocketsphinx"] = "pocketsphinx"
    # The bundled en-us acoustic model is trained on 16 kHz speech; other rates are resampled or refused.
    sample_rate: Literal[16000] = 16000
    # domain: an n-gram model of the intent model's training texts (arpa.py); bundled: pocketsphinx's en-us LM.
    language_model: Literal["domain", "bundled"] = "domain"
    order: int = Field(3, ge=1, le=4)
    hot_words: list[str] = Field(default_factory=list, max_length=1000)
    hot_word_weight: int = Field(20, ge=1, le=1000)  # times each hot phrase joins the domain model's sentences
    wake_phrase: str | None = Field(None, min_length=1, max_length=80)

    @field_validator("hot_words")
    @classmethod
    def _words(cls, value: list[str]) -> list[str]:
        for word in value:
            if not word.strip():
                raise ValueError(f"expected non-empty words or phrases, received {word!r}")
        return value


class Intent(StrictModel):
    model: str = Field(min_length=1)  # a registered classifier on text: NAME, NAME:N or NAME@ALIAS (pinned to NAME:N)


class Answer(StrictModel):
    templates: dict[str, str] | str = Field(default_factory=dict)  # intent → text with {slot|fallback}; or a YAML file
    default: str = "Sorry, I cannot help with that yet."


class Speech(StrictModel):
    engine: Literal["flite"] = "flite"
    voice: str = "slt"
    rate: float = Field(1.0, ge=0.5, le=2.0)  # speaking-rate factor (flite's duration_stretch is its inverse)


class Stages(StrictModel):
    speech_to_text: SpeechToText = Field(default_factory=SpeechToText)
    intent: Intent
    answer: Answer = Field(default_factory=Answer)
    speech: Speech = Field(default_factory=Speech)


class PipelineSpec(StrictModel):
    kind: Literal["pipeline"]
    name: str | None = None
    description: str = ""
    stages: Stages

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def load_pipeline_spec(source: str | Path | dict[str, Any]) -> tuple[PipelineSpec, Path | None]:
    """``(spec, its folder)`` of a YAML/JSON file or a dict; any problem is one SpecError line."""
    folder = None
    if isinstance(source, dict):
        data: Any = source
    else:
        import yaml

        path = Path(source)
        if not path.is_file():
            raise SpecError(f"Pipeline spec file not found: {path}", field="spec")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise SpecError(
                f"Pipeline spec {path} is not valid YAML: {str(exc).splitlines()[0]}", field="spec"
            ) from None
        folder = path.parent
    if not isinstance(data, dict):
        raise SpecError(
            f"Invalid pipeline spec: expected a mapping with kind: pipeline, received {type(data).__name__}"
        )
    try:
        return PipelineSpec.model_validate(data), folder
    except ValidationError as exc:
        raise spec_error_from(exc, root="pipeline") from None
