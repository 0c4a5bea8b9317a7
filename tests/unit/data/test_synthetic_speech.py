"""Synthetic speech (flite / espeak-ng digits) as training-only clips of the fsdd source."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from modelyard.data import load_source
from modelyard.data.synthetic_speech import (
    DIGIT_WORDS,
    Rendering,
    SyntheticSpeechOptions,
    cache_dir,
    plan,
    render_clips,
    trim_silence,
)
from modelyard.errors import DataError, ModelyardError
from tests.support.datasets import shared_dataset

needs_engines = pytest.mark.skipif(
    shutil.which("flite") is None or shutil.which("espeak-ng") is None,
    reason="flite and espeak-ng not installed (Debian packages flite, espeak-ng; scripts/setup installs them)",
)


def _speech_span(clip: np.ndarray, rate: int) -> float:
    """Seconds from the first to the last sample above -40 dB of the peak."""
    loud = np.flatnonzero(np.abs(clip) > np.abs(clip).max() * 0.01)
    return (loud[-1] - loud[0] + 1) / rate


@needs_engines
@pytest.mark.parametrize("rate", [8000, 16000])
def test_clips_are_spoken_digits_at_the_source_rate_from_both_engines(rate: int) -> None:
    opts = SyntheticSpeechOptions(per_class=12)
    x, y = render_clips(opts, DIGIT_WORDS, rate, rate, "start")  # 1 s clips
    assert x.shape == (120, rate) and x.dtype == np.float32
    assert np.bincount(y).tolist() == [12] * 10
    engines = {r.engine for _, r in plan(opts, DIGIT_WORDS)}
    assert engines == {"flite", "espeak-ng"}
    for clip in x:
        rms = float(np.sqrt(np.mean(clip[np.abs(clip) > 0] ** 2)))
        assert rms > 0.01  # speech, not silence
        assert 0.15 <= _speech_span(clip, rate) <= 1.0  # one spoken word, like FSDD's 0.2-0.9 s
        assert np.abs(clip).max() <= 1.0
    # Rendered once: the 8 kHz and 16 kHz clips come from the same cached WAVs.
    assert len(list(cache_dir().glob("*.wav"))) == 120


@needs_engines
def test_a_clip_is_the_engines_wav_resampled_by_scipy_and_trimmed() -> None:
    """Reference: espeak-ng's 22,050 Hz WAV read by soundfile, scipy's resample_poly to 8 kHz."""
    opts = SyntheticSpeechOptions(engines=["espeak-ng"], voices=["en-us+f3"], per_class=1)
    x, _ = render_clips(opts, ["seven"], 8000, 8000, "start")
    [(_, r)] = plan(opts, ["seven"])
    raw, native = sf.read(cache_dir() / f"{r.key()}.wav", dtype="float32")
    assert native == 22050
    expected = trim_silence(resample_poly(raw, 320, 882).astype(np.float32), 8000)  # 8000/22050 = 320/882
    np.testing.assert_allclose(x[0, : len(expected)], expected, atol=1e-6)
    assert not x[0, len(expected) :].any()  # zero-padded to 1 s
    # The speaking rate is applied: the same word at rate 0.8 lasts longer than at 1.25.
    slow, fast = (
        render_clips(
            SyntheticSpeechOptions(engines=["flite"], voices=["kal"], per_class=1, rate=(r, r)),
            ["seven"],
            8000,
            8000,
            "start",
        )[0][0]
        for r in (0.8, 1.25)
    )
    assert _speech_span(slow, 8000) > 1.3 * _speech_span(fast, 8000)


@needs_engines
def test_the_second_call_renders_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    opts = SyntheticSpeechOptions(engines=["flite"], voices=["kal", "slt"], per_class=2)
    first, _ = render_clips(opts, DIGIT_WORDS[:3], 8000, 8000, "start")
    assert len(list(cache_dir().glob("*.wav"))) == 6

    def no_engine(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        if args[1:2] != ["-lv"]:  # listing voices is allowed; rendering is not
            raise AssertionError(f"rendered again: {args}")
        return real_run(args, **kwargs)

    real_run = subprocess.run
    monkeypatch.setattr(subprocess, "run", no_engine)
    again, _ = render_clips(opts, DIGIT_WORDS[:3], 8000, 8000, "start")
    np.testing.assert_array_equal(first, again)
    # Another setting is another key: it would render.
    assert Rendering("flite", "kal", "one", 1.0, None).key() != Rendering("flite", "kal", "one", 1.01, None).key()
    with pytest.raises(AssertionError, match="rendered again"):
        render_clips(opts.model_copy(update={"rate": (0.9, 0.9)}), DIGIT_WORDS[:1], 8000, 8000, "start")


@needs_engines
def test_synthetic_clips_join_the_training_split_only() -> None:
    from modelyard.data.prepare import prepare
    from modelyard.spec import DataSpec

    root = shared_dataset("fsdd")
    synthetic = {"engines": ["flite", "espeak-ng"], "per_class": 3}
    spec = DataSpec.model_validate(
        {"source": "fsdd", "path": str(root), "test_speaker": "theo", "validation": 0.1, "synthetic_speech": synthetic}
    )
    raw = load_source(spec.source)
    assert raw.x_extra.shape == (30, 8000) and raw.x_train.shape == (2000, 8000)
    prepared = prepare(spec, task="classification", seed=0)
    assert len(prepared.train) == 1800 + 30 and len(prepared.val) == 200 and len(prepared.test) == 500
    keys = {row.tobytes() for row in raw.x_extra}
    held = [*prepared.val.x.numpy(), *prepared.test.x.numpy()]
    assert not any(row.tobytes() in keys for row in held)
    train_rows = {row.tobytes() for row in prepared.train.x.numpy()}
    assert keys <= train_rows
    np.testing.assert_array_equal(prepared.train.y.numpy()[-30:], np.repeat(np.arange(10), 3))
    # Without the field the same seed gives the same splits, minus the 30 clips.
    plain = prepare(
        DataSpec.model_validate({"source": "fsdd", "path": str(root), "test_speaker": "theo", "validation": 0.1}),
        task="classification",
        seed=0,
    )
    np.testing.assert_array_equal(plain.train.x.numpy(), prepared.train.x.numpy()[:-30])
    np.testing.assert_array_equal(plain.val.x.numpy(), prepared.val.x.numpy())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"engines": ["festival"]},
            r"`data\.synthetic_speech\.engines\[0\]`: expected one of 'flite' or 'espeak-ng', received 'festival'",
        ),
        ({"engines": ["flite", "flite"]}, r"synthetic_speech\.engines.*each engine once"),
        ({"per_class": 0}, r"`data\.synthetic_speech\.per_class`: expected a number > 0, received 0"),
        ({"rate": [1.5, 1.0]}, r"synthetic_speech.*`rate` as \[low, high\] within 0.5-2.0, received \[1.5, 1.0\]"),
        ({"pitch": [10, 120]}, r"synthetic_speech.*`pitch`.*received \[10, 120\]"),
        ({"voice": ["kal"]}, r"synthetic_speech.*unknown field 'voice'; did you mean 'voices'"),
    ],
)
def test_bad_fields_are_one_line_errors(options: dict[str, object], message: str) -> None:
    from modelyard.spec import DataSpec

    with pytest.raises(ModelyardError, match=message) as info:
        DataSpec.model_validate({"source": "fsdd", "synthetic_speech": options})
    assert "\n" not in str(info.value)


@needs_engines
def test_an_unknown_voice_names_the_installed_ones() -> None:
    opts = SyntheticSpeechOptions(engines=["flite"], voices=["kal", "en-us"])
    with pytest.raises(
        DataError, match=r"`data\.synthetic_speech\.voices\[1\]`.*voice of flite.*'en-us'.*flite: .*slt"
    ) as info:
        plan(opts, DIGIT_WORDS)
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match=r"voices\[0\].*'en-us\+nosuchvariant'"):
        plan(SyntheticSpeechOptions(engines=["espeak-ng"], voices=["en-us+nosuchvariant"]), DIGIT_WORDS)
    assert [r.voice for _, r in plan(SyntheticSpeechOptions(voices=["slt", "en-gb+m3"], per_class=2), ["one"])] == [
        "slt",
        "en-gb+m3",
    ]


@pytest.mark.parametrize(("engine", "package"), [("flite", "flite"), ("espeak-ng", "espeak-ng")])
def test_a_missing_engine_names_the_debian_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str, package: str
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither engine on PATH
    with pytest.raises(DataError, match=rf"{engine} is not installed.*apt-get install {package}\)") as info:
        plan(SyntheticSpeechOptions(engines=[engine]), DIGIT_WORDS)
    assert "\n" not in str(info.value) and "data.synthetic_speech.engines" in str(info.value)


def _keyword_folder(root: Path, rate: int = 8000) -> Path:
    """Two classes of made-up recordings (tones): what matters is where the spoken clips go."""
    for k, name in enumerate(("no_way", "yes")):
        (root / name).mkdir(parents=True)
        for i in range(5):
            t = np.arange(rate // 2) / rate
            sf.write(root / name / f"{i}.wav", 0.3 * np.sin(2 * np.pi * (300 + 100 * k + 10 * i) * t), rate)
    return root


@needs_engines
def test_the_audio_source_speaks_each_class_into_the_training_split_only(tmp_path: Path) -> None:
    from modelyard.data.prepare import prepare
    from modelyard.spec import DataSpec

    root = _keyword_folder(tmp_path / "keywords")
    synthetic = {"engines": ["flite"], "per_class": 2, "words": {"no_way": "no way"}}
    options = {"source": "audio", "path": str(root), "sample_rate": 8000, "duration": 1.0, "validation": 0.2}
    spec = DataSpec.model_validate({**options, "synthetic_speech": synthetic})
    raw = load_source(spec.source)
    assert raw.class_names == ["no_way", "yes"] and raw.x_train.shape == (10, 8000)
    # Reference: the same renderer asked for the phrase and the folder name directly.
    expected_x, expected_y = render_clips(
        SyntheticSpeechOptions(engines=["flite"], per_class=2), ["no way", "yes"], 8000, 8000, "start"
    )
    np.testing.assert_array_equal(raw.x_extra, expected_x)
    assert raw.y_extra.tolist() == expected_y.tolist() == [0, 0, 1, 1]
    prepared = prepare(spec, task="classification", seed=0)
    plain = prepare(DataSpec.model_validate(options), task="classification", seed=0)
    assert len(prepared.train) == len(plain.train) + 4 and len(prepared.val) == len(plain.val)
    np.testing.assert_array_equal(prepared.train.x.numpy()[:-4], plain.train.x.numpy())
    held = {row.tobytes() for row in prepared.val.x.numpy()}
    assert not any(row.tobytes() in held for row in raw.x_extra)


def test_the_audio_source_refuses_words_for_classes_it_does_not_have(tmp_path: Path) -> None:
    from modelyard.spec import DataSpec

    root = _keyword_folder(tmp_path / "keywords")
    spec = DataSpec.model_validate(
        {"source": "audio", "path": str(root), "synthetic_speech": {"words": {"maybe": "maybe"}}}
    )
    with pytest.raises(
        DataError,
        match=r"`data\.synthetic_speech\.words`: expected class names of \['no_way', 'yes'\], received \['maybe'\]",
    ):
        load_source(spec.source)
    with pytest.raises(
        ModelyardError, match=r"synthetic_speech\.words.*expected a word or phrase to speak for class 'yes'"
    ):
        DataSpec.model_validate({"source": "audio", "path": str(root), "synthetic_speech": {"words": {"yes": " "}}})


def test_spoken_text_is_never_an_engine_option(tmp_path: Path) -> None:
    from modelyard.data.synthetic_speech import Rendering, _command
    from modelyard.spec import DataSpec

    with pytest.raises(ModelyardError, match=r"synthetic_speech\.words.*starting with a letter or digit.*'-w/tmp/x'"):
        DataSpec.model_validate(
            {"source": "audio", "path": str(tmp_path), "synthetic_speech": {"words": {"yes": "-w/tmp/x"}}}
        )
    for engine in ("flite", "espeak-ng"):
        r = Rendering(engine=engine, voice="kal" if engine == "flite" else "en-us", text="-w/tmp/x", rate=1.0, pitch=50)
        command = _command(engine, r, tmp_path / "out.wav")
        # the text is the last argument and follows "--" (espeak-ng) or starts with a space after -t (flite)
        if engine == "espeak-ng":
            assert command[-2:] == ["--", "-w/tmp/x"]
        else:
            assert command[command.index("-t") + 1] == " -w/tmp/x"
