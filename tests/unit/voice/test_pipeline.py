"""A voice pipeline end to end: registered over a CLINC150 intent model, served, answering a flite recording.

The intent model trains once for the module (~10 s); the recognizer is pocketsphinx's bundled en-us
acoustic model with the domain language model built at registration.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile as sf

from modelyard import workflow
from modelyard.errors import InputError, MissingDependencyError, NotFoundError, SpecError
from modelyard.serving import ServeConfig, create_app
from modelyard.store.pipelines import PipelineStore
from modelyard.voice import VoicePipeline, register_pipeline
from modelyard.voice.normalize import normalize
from tests.support.audio import tone, wav_bytes
from tests.support.serving import client
from tests.support.voice import flite_wav, pipeline_spec

pytest.importorskip("pocketsphinx")
pytestmark = pytest.mark.anyio

SENTENCE = "hey yard set a timer for five minutes"
ROUTE = "/v1/models/assistant/predict"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.voice import bag_spec

    home = tmp_path_factory.mktemp("voice-home")
    workflow.train(bag_spec(), home=home, progress=False)
    register_pipeline(pipeline_spec(wake_phrase="hey yard", hot_words=["yard"]), name="assistant", home=home)
    return home


@pytest.fixture(scope="module")
def pipeline(store: Path) -> VoicePipeline:
    return VoicePipeline.load("assistant", home=store)


def test_registration_pins_the_intent_model_and_stores_the_language_model(store: Path) -> None:
    version = PipelineStore(store).get("assistant")
    assert version.ref == "assistant:1"
    assert version.spec["stages"]["intent"]["model"] == "clinc-bag:1"  # pinned, not the bare name
    assert len(version.spec["stages"]["answer"]["templates"]) == 150  # the file's templates, stored
    built = version.spec["built"]["language_model"]
    assert built["sentences"] > 15000 and built["words"] > 4000
    assert version.file("language_model.arpa").read_text().startswith("\\data\\")
    first = register_pipeline(pipeline_spec(language_model="bundled"), name="plain", home=store)
    again = register_pipeline(pipeline_spec(), name="plain", home=store)
    assert (first.ref, again.ref) == ("plain:1", "plain:2")  # versioned like models
    assert not (first.path / "language_model.arpa").exists() and (again.path / "language_model.arpa").is_file()


async def test_a_spoken_query_is_transcribed_classified_answered_and_spoken(
    store: Path, pipeline: VoicePipeline, tmp_path: Path
) -> None:
    app = create_app([pipeline], ServeConfig(max_wait_ms=0))
    async with client(app) as http:
        response = await http.post(
            ROUTE, content=flite_wav(SENTENCE, "awb", tmp_path), headers={"content-type": "audio/wav"}
        )
        listing = (await http.get("/v1/models")).json()["models"]
    assert response.status_code == 200, response.text
    answer = response.json()
    assert jiwer.wer(normalize(SENTENCE), answer["transcript"]) <= 0.25, answer["transcript"]
    assert answer["wake_phrase_heard"] is True
    query = answer["transcript"].removeprefix("hey yard ").strip()
    label, confidence = pipeline.intent(query)  # the intent model's own answer for the transcript's text
    assert (answer["intent"], answer["confidence"]) == (label, pytest.approx(confidence))
    template = pipeline.spec.stages.answer.templates[label]
    if label == "timer":
        assert answer["answer"] == "Setting a timer for five minutes." and answer["slots"] == {
            "duration": "five minutes"
        }
    else:
        assert answer["answer"].split(" ")[0] == template.split(" ")[0]
    samples, rate = sf.read(io.BytesIO(base64.b64decode(answer["audio"]["base64"])), dtype="float32")
    assert rate == answer["audio"]["sample_rate"] == 16000 and len(samples) > rate // 2
    assert np.sqrt(np.mean(samples**2)) > 0.01  # speech, not silence
    timings = answer["timings_ms"]
    assert set(timings) == {"speech_to_text", "intent", "answer", "speech", "total"}
    assert timings["total"] >= timings["speech_to_text"] + timings["speech"] > 0
    assert listing[0]["task"] == "pipeline" and listing[0]["stages"]["intent"] == "clinc-bag:1"


async def test_without_the_wake_phrase_the_answer_says_so(pipeline: VoicePipeline, tmp_path: Path) -> None:
    app = create_app([pipeline], ServeConfig(max_wait_ms=0))
    async with client(app) as http:
        response = await http.post(
            ROUTE, files=[("a", ("a.wav", flite_wav("what is my bank balance", "rms", tmp_path), "audio/wav"))]
        )
        both = await http.post(
            ROUTE,
            files=[
                ("a", ("a.wav", flite_wav("hey yard what is my bank balance", "slt", tmp_path), "audio/wav")),
                ("b", ("b.wav", wav_bytes(np.zeros(8000, np.float32), 16000), "audio/wav")),
            ],
        )
    answer = response.json()
    assert response.status_code == 200 and answer["wake_phrase_heard"] is False, answer
    assert answer["intent"] is None and answer["answer"] == "No wake phrase heard: start with 'hey yard'."
    first, silence = both.json()["predictions"]  # several files: one answer each, in order
    assert first["wake_phrase_heard"] is True and "balance" in first["transcript"], first
    assert silence["transcript"] == "" and silence["intent"] is None and silence["confidence"] is None


async def test_bad_audio_gets_a_4xx_naming_the_limit(pipeline: VoicePipeline) -> None:
    app = create_app([pipeline], ServeConfig(max_wait_ms=0, max_audio_seconds=30.0))
    cases = [
        (b"not a wav", "audio/wav", 400, "expected a WAV or FLAC file"),
        (b"", "audio/wav", 400, "empty"),
        (wav_bytes(np.zeros(0, np.float32), 16000), "audio/wav", 400, "zero length"),
        (b"RIFF\xff\xff\xff\x7fWAVEfmt 0123456789", "audio/wav", 400, "corrupt or unsupported WAV data"),
        (wav_bytes(tone(600.0, 8000), 8000, subtype="PCM_U8"), "audio/wav", 422, "too long: expected at most 30 s, received 600.0 s"),
        (wav_bytes(tone(600.0, 16000), 16000), "audio/wav", 413, "too large"),
        (wav_bytes(tone(1.0, 8000), 8000), "audio/wav", 422, "expected 16000 Hz, received 8000 Hz"),
        (json.dumps({"instances": ["hello"]}).encode(), "application/json", 415, "takes speech"),
    ]  # fmt: skip
    async with client(app) as http:
        for body, ctype, status, message in cases:
            response = await http.post(ROUTE, content=body, headers={"content-type": ctype})
            assert response.status_code == status, (message, response.text)
            assert message in response.json()["message"], response.text
        query = await http.post(ROUTE + "?top_k=3", content=wav_bytes(tone(1.0, 16000), 16000))
        explain = await http.post("/v1/models/assistant/explain", json={"instances": ["x"]})
    assert query.status_code == 422 and "takes no options" in query.text
    assert explain.status_code == 404 and "voice pipeline" in explain.text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stages": {"intent": {"model": "clinc-bag"}, "answerz": {}}}, "unknown field 'answerz'; did you mean 'answer'?"),
        ({"stages": {"intent": {"model": "no-such-model"}}}, "Invalid value for `stages.intent.model`: Unknown model 'no-such-model'"),
        ({"stages": {"intent": {"model": "clinc-bag"}, "answer": {"templates": {"timr": "x"}}}}, "expected an intent of the intent model (did you mean 'timer'?), received 'timr'"),
        ({"stages": {"intent": {"model": "clinc-bag"}, "answer": {"templates": {"timer": "for {when}"}}}}, "expected slots among duration, number, time, place, language, received {when}"),
        ({"stages": {"intent": {"model": "clinc-bag"}, "speech_to_text": {"hot_words": ["zzqxv"]}}}, "received zzqxv (not in it)"),
        ({"stages": {"intent": {"model": "clinc-bag"}, "speech": {"voice": "nobody"}}}, "expected one of the installed flite voices"),
        ({"kind": "model", "stages": {"intent": {"model": "clinc-bag"}}}, "Invalid value for `kind`"),
    ],
)  # fmt: skip
def test_bad_pipeline_specs_are_one_line_errors(store: Path, change: dict, message: str) -> None:
    spec = {"kind": "pipeline", **change}
    before = [v.ref for v in PipelineStore(store).list()]
    with pytest.raises((SpecError, NotFoundError)) as info:
        register_pipeline(spec, name="bad", home=store)
    assert message in info.value.message and "\n" not in info.value.message, info.value.message
    assert [v.ref for v in PipelineStore(store).list()] == before  # nothing half-written


@pytest.mark.parametrize("content", [b"timer: [unclosed", b"\xff\xfe not utf-8"])
def test_a_broken_templates_file_is_one_line(store: Path, tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "templates.yaml"
    bad.write_bytes(content)
    spec = {"kind": "pipeline", "stages": {"intent": {"model": "clinc-bag"}, "answer": {"templates": str(bad)}}}
    before = [v.ref for v in PipelineStore(store).list()]
    with pytest.raises(
        SpecError, match=r"Invalid templates file .*templates\.yaml \(`stages\.answer\.templates`\)"
    ) as info:
        register_pipeline(spec, name="bad", home=store)
    assert "\n" not in info.value.message
    assert [v.ref for v in PipelineStore(store).list()] == before  # nothing stored


def test_a_name_is_a_model_or_a_pipeline_never_both(store: Path) -> None:
    from modelyard.store import ModelStore

    spec = {"kind": "pipeline", "stages": {"intent": {"model": "clinc-bag"}}}
    before = [v.ref for v in PipelineStore(store).list()]
    with pytest.raises(InputError, match=r"^Invalid pipeline name 'clinc-bag': a model of that name is registered"):
        register_pipeline(spec, name="clinc-bag", home=store)
    assert [v.ref for v in PipelineStore(store).list()] == before
    models = [v.ref for v in ModelStore(store).list()]
    with pytest.raises(InputError, match=r"^Invalid model name 'assistant': a pipeline of that name is registered"):
        ModelStore(store).register("assistant", state_dict={}, spec={}, preprocess={}, metrics={})
    assert [v.ref for v in ModelStore(store).list()] == models


def test_the_intent_model_a_pipeline_pins_cannot_be_deleted(store: Path) -> None:
    from modelyard.errors import StoreError
    from modelyard.store import ModelStore

    pinned = PipelineStore(store).get("assistant").spec["stages"]["intent"]["model"]
    with pytest.raises(StoreError, match=rf"^Refused to delete {pinned}: it is served by pipeline assistant:1"):
        ModelStore(store).delete(pinned)
    assert ModelStore(store).get(pinned).ref == pinned


def test_a_missing_voice_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from modelyard.voice import stt

    monkeypatch.setitem(sys.modules, "pocketsphinx", None)  # import pocketsphinx → ImportError
    with pytest.raises(MissingDependencyError, match=r"modelyard\[voice\]"):
        stt.unknown_words(["hello"])


def test_the_example_spec_has_a_template_for_each_clinc150_intent(pipeline: VoicePipeline) -> None:
    from modelyard.voice.spec import load_pipeline_spec
    from tests.support.voice import EXAMPLES

    spec, folder = load_pipeline_spec(EXAMPLES / "voice" / "assistant.yaml")
    assert spec.stages.speech_to_text.language_model == "domain" and folder == EXAMPLES / "voice"
    import yaml

    templates = yaml.safe_load((folder / spec.stages.answer.templates).read_text())
    assert set(templates) == set(pipeline.intent_model.class_names)  # the trained model's 150 intents


def test_the_cli_registers_lists_and_shows_pipelines(store: Path, tmp_path: Path) -> None:
    import yaml

    from tests.support.cli import run_cli

    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(pipeline_spec(hot_words=["yard"])))
    made = run_cli("--home", str(store), "pipelines", "register", str(spec_file), "--name", "cli-voice")
    assert made.code == 0 and "registered pipeline cli-voice:1: intent model clinc-bag:1" in made.out, made.err
    rows = json.loads(run_cli("--home", str(store), "pipelines", "--json").out)
    assert {"pipeline": "cli-voice:1", "intent_model": "clinc-bag:1", "language_model": "domain", "voice": "slt",
            "description": ""} in rows  # fmt: skip
    shown = json.loads(run_cli("--home", str(store), "pipelines", "show", "cli-voice").out)
    assert shown["pipeline"] == "cli-voice:1" and shown["stages"]["speech_to_text"]["hot_words"] == ["yard"]
    missing = run_cli("--home", str(store), "pipelines", "show", "nope")
    assert (
        missing.code != 0 and "Pipeline 'nope' not found" in missing.err and len(missing.err.strip().splitlines()) == 1
    )
