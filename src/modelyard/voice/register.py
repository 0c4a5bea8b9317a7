"""``register_pipeline``: a pipeline spec checked against the store, built and stored as ``NAME:k``.

Everything is checked before anything is written: the intent model exists and classifies text
(its ref is pinned to ``NAME:N``), every template names one of its intents and only known slots,
the hot words and the wake phrase are in the pronouncing dictionary, flite has the voice. Then
the domain language model is built from the intent model's training texts (the data source's
training split as its spec names it: never the test split) and stored with the resolved spec.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelyard.errors import InputError, NotFoundError, SpecError
from modelyard.registry import closest
from modelyard.store.pipelines import PipelineStore, PipelineVersion
from modelyard.voice.answer import SLOTS, template_slots
from modelyard.voice.spec import PipelineSpec, load_pipeline_spec
from modelyard.voice.stt import LM_FILE, domain_language_model, unknown_words
from modelyard.voice.tts import Speaker

__all__ = ["register_pipeline"]


def _intent_model(ref: str, home: Path | str | None) -> tuple[str, Any]:
    from modelyard.predict import Predictor
    from modelyard.store.models import ModelStore

    field = "stages.intent.model"
    try:
        version = ModelStore(home).get(ref)
    except (NotFoundError, InputError) as exc:  # the store's own line, under the spec's field
        raise type(exc)(f"Invalid value for `{field}`: {exc.message}", field=field) from None
    predictor = Predictor.from_version(version)
    if predictor.task != "classification" or getattr(predictor.pipeline, "kind", None) != "text":
        raise SpecError(
            f"Invalid value for `{field}`: expected a classifier of text, received {predictor.ref} "
            f"(a {predictor.task} model on {getattr(predictor.pipeline, 'kind', 'unknown')} inputs)",
            field=field,
        )
    return predictor.ref, predictor


def _templates(spec: PipelineSpec, folder: Path | None, intents: list[str]) -> dict[str, str]:
    field = "stages.answer.templates"
    templates = spec.stages.answer.templates
    if isinstance(templates, str):
        import yaml

        path = Path(templates) if Path(templates).is_absolute() or folder is None else folder / templates
        if not path.is_file():
            raise SpecError(f"Invalid value for `{field}`: templates file not found: {path}", field=field)
        try:
            templates = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, yaml.YAMLError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SpecError(f"Invalid templates file {path} (`{field}`): {first}", field=field) from None
        if not isinstance(templates, dict) or not all(isinstance(v, str) for v in templates.values()):
            raise SpecError(f"Invalid templates file {path}: expected a mapping of intent to text", field=field)
    for intent, text in templates.items():
        if intent not in intents:
            hint = closest(str(intent), intents)
            raise SpecError(
                f"Invalid value for `{field}.{intent}`: expected an intent of the intent model"
                f"{f' (did you mean {hint!r}?)' if hint else ''}, received {intent!r}",
                field=f"{field}.{intent}",
            )
        for slot in template_slots(text):
            if slot not in SLOTS:
                raise SpecError(
                    f"Invalid value for `{field}.{intent}`: expected slots among {', '.join(SLOTS)}, received {{{slot}}}",
                    field=f"{field}.{intent}",
                )
    return {str(k): v for k, v in templates.items()}


def _training_texts(predictor: Any) -> list[str]:
    from modelyard.data.sources import load_source

    spec = predictor.spec
    raw = load_source(spec.data.source, seed=spec.seed)
    return [str(t) for t in raw.x_train]


def register_pipeline(
    source: str | Path | dict[str, Any], *, name: str | None = None, home: Path | str | None = None
) -> PipelineVersion:
    """Check ``source`` (a spec file or dict), build its stages' files and register the next version."""
    spec, folder = load_pipeline_spec(source)
    name = name or spec.name
    if not name:
        raise SpecError("Missing pipeline name: expected `name:` in the spec or --name NAME", field="name")
    stages = spec.stages
    pinned, predictor = _intent_model(stages.intent.model, home)
    intents = [str(c) for c in (predictor.class_names or [])]
    templates = _templates(spec, folder, intents)
    Speaker(stages.speech.voice, stages.speech.rate)  # flite and the voice are there
    stt = stages.speech_to_text
    files: dict[str, bytes] = {}
    meta: dict[str, Any] = {}
    if stt.hot_words:
        if stt.language_model != "domain":
            raise SpecError(
                "Invalid value for `stages.speech_to_text.hot_words`: hot words bias the domain language model; "
                "expected language_model: domain, received bundled",
                field="stages.speech_to_text.hot_words",
            )
        from modelyard.voice.normalize import spoken_words

        missing = unknown_words({w for h in stt.hot_words for w in spoken_words(h)})
        if missing:
            raise SpecError(
                f"Invalid value for `stages.speech_to_text.hot_words`: expected words of the pronouncing dictionary, "
                f"received {', '.join(missing[:5])} (not in it)",
                field="stages.speech_to_text.hot_words",
            )
    if stt.language_model == "domain":
        arpa, meta = domain_language_model(
            _training_texts(predictor),
            hot_words=stt.hot_words,
            hot_word_weight=stt.hot_word_weight,
            wake_phrase=stt.wake_phrase,
            order=stt.order,
        )
        files[LM_FILE] = arpa.encode()
    elif stt.wake_phrase and unknown_words(stt.wake_phrase.lower().split()):
        raise SpecError(
            "Invalid value for `stages.speech_to_text.wake_phrase`: expected words of the pronouncing dictionary, "
            f"received {stt.wake_phrase!r}",
            field="stages.speech_to_text.wake_phrase",
        )
    resolved = spec.to_dict()
    resolved["name"] = name
    resolved["stages"]["intent"]["model"] = pinned
    resolved["stages"]["answer"]["templates"] = templates
    resolved["built"] = {"language_model": meta, "intent_model": pinned}
    return PipelineStore(home).register(name, spec=resolved, files=files)
