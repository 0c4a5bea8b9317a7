"""The playground's microphone in headless Chromium against a real control-plane server:
Chromium's fake audio capture plays a real FSDD recording as the microphone, the page records
it (Record, about 1.5 s, Stop), resamples it to the model's 8 kHz, encodes a 16-bit PCM WAV and
posts it to a served spoken-digit model; the label shown must be the one the API gives for the
same WAV posted directly. The WAV the page sent is checked with Python's `wave` module and
against the source recording; the page's resampler and WAV encoder against exact sines and
soundfile; an uploaded WAV file and a refused microphone too. Every field of a voice pipeline's
answer (timings, reply player) is checked against a stand-in predict route
(test_a_voice_pipeline_answer_is_shown_and_its_reply_plays), and a real registered pipeline,
deployed on the control plane, against its own API answer
(test_a_deployed_voice_pipeline_answers_the_microphone).
"""

from __future__ import annotations

import base64
import contextlib
import io
import subprocess
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import Request  # at module level: the stand-in route's annotation is resolved here

from tests.support.browser import chromium, free_port, needs_chromium, running_server, shot, wait
from tests.support.datasets import shared_dataset
from tests.support.serving import register

pytestmark = needs_chromium

RATE = 8000
RECORDING = "7_theo_0.wav"  # a test-split recording (index 0): the model never trained on it


def fsdd_spec(folder: Path) -> dict[str, Any]:
    """A small log-mel CNN on FSDD's own split, a few epochs (seconds; not accurate, need not be)."""
    return {
        "name": "digits-spoken",
        "seed": 0,
        "data": {"source": "fsdd", "path": str(folder)},
        "model": {
            "input": [RATE],
            "layers": [
                {"logmel": {"sample_rate": RATE, "n_fft": 256, "win_length": 200, "hop_length": 160, "n_mels": 32}},
                "batchnorm",
                {"conv2d": 16, "kernel": 3, "padding": "same"},
                "relu",
                {"maxpool2d": 2},
                {"conv2d": 32, "kernel": 3, "padding": "same"},
                "relu",
                "global_avg_pool",
                {"dense": 10, "activation": "softmax"},
            ],
        },
        "train": {
            "loss": "cross_entropy",
            "optimizer": "adam",
            "lr": 0.003,
            "batch_size": 32,
            "epochs": 3,
            "metrics": ["accuracy"],
            "checkpoint": False,
        },
    }


def api_predict(url: str, body: bytes) -> dict[str, Any]:
    r = httpx.post(
        f"{url}/v1/deployments/spoken/predict", content=body, headers={"content-type": "audio/wav"}, timeout=30
    )
    assert r.status_code == 200, r.text
    return r.json()["predictions"][0]


def best_alignment(recorded: np.ndarray, source: np.ndarray, window: int = 1500) -> float:
    """Normalized correlation of the loudest ``window`` samples of ``recorded`` with the stretch
    of ``source`` that matches them best. Chromium loops the fake capture file (with a short gap
    between loops) from wherever the loop happens to be, so one window inside one loop is compared."""
    from scipy.signal import correlate, resample_poly

    energy = np.convolve(recorded**2, np.ones(window), mode="valid")
    start = int(np.argmax(energy))
    # at 4x the rate (scipy's polyphase resampler), so that no lag is off by more than 1/8 sample
    clip = resample_poly(recorded[start : start + window], 4, 1)
    looped = resample_poly(np.tile(source, 3), 4, 1)
    dots = correlate(looped, clip, mode="valid")
    norms = np.sqrt(correlate(looped**2, np.ones(len(clip)), mode="valid")) * np.linalg.norm(clip)
    return float(np.max(dots / np.maximum(norms, 1e-12)))


@pytest.fixture
def spoken(home: Path, tmp_path: Path) -> Any:
    """A trained FSDD model deployed on a real server; yields (url, fsdd recordings folder)."""
    from modelyard.workflow import train

    folder = shared_dataset("fsdd")
    ref = train(fsdd_spec(folder), home=home, progress=False).model_ref
    with running_server(home, tmp_path / "server.log") as url:
        made = httpx.post(
            f"{url}/v1/deployments", json={"name": "spoken", "model": ref, "backend": "torch"}, timeout=30
        )
        assert made.status_code == 201, made.text
        deadline = time.monotonic() + 120
        while httpx.get(f"{url}/v1/deployments/spoken").json()["status"] != "running":
            assert time.monotonic() < deadline, "the replica did not start"
            time.sleep(0.3)
        yield url, folder / "recordings"


@pytest.mark.slow  # trains on FSDD for ~20 s
def test_record_from_the_microphone_and_upload_a_wav(spoken: Any, screenshots: Path) -> None:
    from selenium.webdriver.common.by import By

    url, recordings = spoken
    source_path = recordings / RECORDING
    fake_mic = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")
    with chromium(*fake_mic, f"--use-file-for-fake-audio-capture={source_path}") as driver:
        driver.get(url + "/#/playground/spoken")
        record = wait(driver, "the Record button", lambda d: d.find_element(By.ID, "audio-record"))
        assert "audio at 8000 Hz" in driver.find_element(By.ID, "view").text
        assert not driver.find_elements(By.ID, "features-form")  # not 8,000 number fields
        record.click()
        wait(driver, "recording", lambda d: d.find_elements(By.ID, "audio-recording"))
        time.sleep(1.5)
        driver.find_element(By.ID, "audio-stop").click()
        label = wait(driver, "the spoken digit's label", lambda d: d.find_element(By.ID, "prediction-label"))
        state = driver.execute_script("return window.modelyard.playground")

        sent = base64.b64decode(state["lastRecording"]["base64"])
        with wave.open(io.BytesIO(sent)) as w:  # the stdlib's reader: a valid RIFF/WAVE PCM file
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, RATE)
            frames = w.getnframes()
            pcm = np.frombuffer(w.readframes(frames), dtype="<i2").astype(np.float64) / 32768
        assert 1.2 * RATE <= frames <= 6.0 * RATE, frames  # 1.5 s, and clicks on a loaded machine
        assert state["lastRecording"]["capture_rate"] != RATE  # so the page did resample
        expected = api_predict(url, sent)  # the reference: the same WAV, straight to the API
        assert label.text == expected["label"]
        np.testing.assert_allclose(
            state["lastAnswer"]["predictions"][0]["probabilities"], expected["probabilities"], atol=1e-5
        )
        # What was recorded is the recording Chromium played (looped), not noise or a beep.
        import soundfile as sf

        source, rate = sf.read(source_path, dtype="float64")
        assert rate == RATE
        assert best_alignment(pcm, source) > 0.95  # 48 kHz (Chromium's) → 8 kHz (the page's resampler)
        shot(driver, screenshots, "playground-audio-recorded.png")

        # A WAV file through the file input: sent as it is, the API's answer for its bytes.
        driver.execute_script("window.modelyard.playground.lastAnswer = null")
        driver.find_element(By.ID, "audio-file").send_keys(str(source_path))
        wait(driver, "the upload's answer", lambda d: d.execute_script("return window.modelyard.playground.lastAnswer"))
        uploaded = driver.execute_script("return window.modelyard.playground.lastAnswer")["predictions"][0]
        reference = api_predict(url, source_path.read_bytes())
        assert uploaded["label"] == reference["label"]
        np.testing.assert_allclose(uploaded["probabilities"], reference["probabilities"], atol=1e-5)
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == [], errors

    # The microphone refused (the site setting a user would change; without the fake UI that accepts
    # every prompt): one line saying so, and Record can be pressed again.
    with chromium("--use-fake-device-for-media-stream") as driver:
        driver.execute_cdp_cmd(
            "Browser.setPermission", {"permission": {"name": "microphone"}, "setting": "denied", "origin": url}
        )
        driver.get(url + "/#/playground/spoken")
        wait(driver, "the Record button", lambda d: d.find_element(By.ID, "audio-record")).click()
        status = wait(driver, "the refusal", lambda d: d.find_element(By.CSS_SELECTOR, "#audio-status .error"), 30)
        assert status.text.startswith("Microphone access was denied: allow the microphone"), status.text
        assert driver.find_element(By.ID, "audio-record").is_enabled()


def test_the_pages_resampler_and_wav_encoder_against_exact_sines_and_soundfile(server: str, browser: Any) -> None:
    """audio.js in the browser: tones resampled between common rates equal the same tone sampled
    at the target rate (the windowed-sinc interpolation), a tone above the target's Nyquist is
    removed (the anti-alias low-pass), and the WAV it writes reads back in soundfile."""
    import soundfile as sf

    browser.get(server + "/#/jobs")
    wait(browser, "the console", lambda d: d.execute_script("return document.readyState") == "complete")
    cases = [(48000, 8000, 440.0), (48000, 16000, 3000.0), (44100, 16000, 1000.0), (8000, 48000, 1000.0)]
    got = browser.execute_async_script(
        """
        const [cases, done] = [arguments[0], arguments[arguments.length - 1]];
        import("/console/js/audio.js").then((m) => {
          const tone = (rate, freq, n) => Float32Array.from({ length: n }, (_, i) => Math.sin(2 * Math.PI * freq * i / rate));
          const out = cases.map(([from, to, freq]) => Array.from(m.resample(tone(from, freq, from / 2), from, to)));
          const alias = Array.from(m.resample(tone(48000, 6000, 24000), 48000, 8000));
          const wav = new Uint8Array(m.encodeWav(Float32Array.from([0, 0.5, -0.5, 0.25, 1, -1, 2, -2]), 16000));
          done({ out, alias, wav: btoa(String.fromCharCode(...wav)) });
        }).catch((e) => done({ error: String(e) }));
        """,
        cases,
    )
    assert "error" not in got, got
    for (source, target, freq), samples in zip(cases, got["out"]):
        samples = np.asarray(samples)
        assert len(samples) == target // 2
        exact = np.sin(2 * np.pi * freq * np.arange(len(samples)) / target)
        inner = slice(64, -64)  # the kernel's half-width reaches past the clip's ends
        np.testing.assert_allclose(samples[inner], exact[inner], atol=2e-3, err_msg=f"{source} → {target} Hz")
    assert np.sqrt(np.mean(np.square(got["alias"][64:-64]))) < 1e-2  # 6 kHz would alias to 2 kHz at 8 kHz
    data, rate = sf.read(io.BytesIO(base64.b64decode(got["wav"])), dtype="int16")
    info = sf.info(io.BytesIO(base64.b64decode(got["wav"])))
    assert (rate, info.channels, info.subtype, info.format) == (16000, 1, "PCM_16", "WAV")
    assert data.tolist() == [0, 16384, -16384, 8192, 32767, -32768, 32767, -32768]  # clipped to [-1, 1]


def console_fmt1(value: float) -> str:
    """dom.js ``fmt(value, 1)`` for the values here: integers as they are, others to one decimal."""
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


@contextlib.contextmanager
def voice_server(home: Path, ref: str, answers: list[dict[str, Any]]) -> Iterator[str]:
    """The real control-plane app (console, catalog, session, auth middleware, CSP) on 127.0.0.1,
    with deployment ``voice`` answered by a stand-in of the voice pipeline's predict route: the
    audio model ``ref`` classifies the posted WAV (its label is the "transcript" and the intent),
    flite speaks the answer. Each request's WAV and answer are appended to ``answers``."""
    import soundfile as sf
    import uvicorn

    from modelyard.audio_decode import fit_length
    from modelyard.predict import Predictor
    from modelyard.server.app import create_server_app
    from modelyard.server.config import ServerConfig

    model = Predictor.load(ref, home=home)
    port = free_port()
    app = create_server_app(ServerConfig(home=home, port=port), start_workers=False)

    def deployment() -> dict[str, Any]:
        return {"name": "voice", "model": ref, "status": "running"}

    async def predict(request: Request) -> dict[str, Any]:
        body = await request.body()
        started = time.perf_counter()
        samples, _ = sf.read(io.BytesIO(body), dtype="float32")
        first = model.predict(fit_length(samples, model.input_shape[0])[None])[0]
        label = model.meta["class_names"][int(np.argmax(first))]
        heard = time.perf_counter()
        text = f"You said {label}."
        reply = subprocess.run(
            ["flite", "-voice", "slt", "-t", text, "-o", "/dev/stdout"], capture_output=True, check=True
        )
        done = time.perf_counter()
        answer = {
            "transcript": label,
            "wake_phrase_heard": False,
            "intent": f"say_{label}",
            "confidence": float(np.max(first)),
            "answer": text,
            "audio": {"format": "wav", "sample_rate": sf.info(io.BytesIO(reply.stdout)).samplerate,
                      "base64": base64.b64encode(reply.stdout).decode()},
            "timings_ms": {"speech_to_text": 1000 * (heard - started), "intent": 0.0, "answer": 0.0,
                           "speech": 1000 * (done - heard), "total": 1000 * (done - started)},
        }  # fmt: skip
        answers.append({"wav": body, "content_type": request.headers.get("content-type"), "answer": answer})
        return answer

    app.add_api_route("/v1/deployments/voice", deployment, methods=["GET"])
    app.add_api_route("/v1/deployments/voice/predict", predict, methods=["POST"])
    for _ in range(2):  # ahead of the real deployments routes, which would look the name up
        app.router.routes.insert(0, app.router.routes.pop())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def test_a_voice_pipeline_answer_is_shown_and_its_reply_plays(home: Path, screenshots: Path) -> None:
    """The playground's rendering of the voice pipeline's documented answer (docs/console.md): the
    page records from the fake microphone, and the transcript, intent, confidence, answer, timings
    and the reply player must be the route's JSON for the WAV it received; the reply must load
    under the page's CSP and last as long as the WAV in the answer."""
    import soundfile as sf
    from selenium.webdriver.common.by import By

    from modelyard.server.console.routes import SECURITY_HEADERS

    source = shared_dataset("fsdd") / "recordings" / RECORDING
    answers: list[dict[str, Any]] = []
    ref = register("wav", home)  # 8 kHz, 0.1 s: a tiny audio model (random weights)
    fake_mic = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")
    with (
        voice_server(home, ref, answers) as url,
        chromium(*fake_mic, f"--use-file-for-fake-audio-capture={source}") as driver,
    ):
        assert "media-src 'self' data: blob:" in httpx.get(url + "/").headers["content-security-policy"]
        driver.get(url + "/#/playground/voice")
        wait(driver, "the Record button", lambda d: d.find_element(By.ID, "audio-record")).click()
        wait(driver, "recording", lambda d: d.find_elements(By.ID, "audio-recording"))
        time.sleep(1.0)
        driver.find_element(By.ID, "audio-stop").click()
        wait(driver, "the transcript", lambda d: d.find_element(By.ID, "pipeline-transcript"))
        assert len(answers) == 1
        got = answers[0]
        answer = got["answer"]
        # What the server received: the page's WAV, 16-bit mono PCM at the model's 8 kHz.
        assert got["content_type"] == "audio/wav"
        with wave.open(io.BytesIO(got["wav"])) as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, RATE)
            assert 0.8 * RATE <= w.getnframes() <= 6.0 * RATE
        state = driver.execute_script("return window.modelyard.playground")
        assert base64.b64decode(state["lastRecording"]["base64"]) == got["wav"]

        text = lambda element_id: driver.find_element(By.ID, element_id).text  # noqa: E731
        assert text("pipeline-transcript") == answer["transcript"]
        assert text("pipeline-intent") == answer["intent"]
        assert text("pipeline-confidence") == f"{answer['confidence']:.3f}"
        assert text("pipeline-answer") == answer["answer"]
        facts = dict(zip(*(
            [e.text for e in driver.find_elements(By.CSS_SELECTOR, f"#prediction dl {tag}")] for tag in ("dt", "dd")
        )))  # fmt: skip
        assert facts["Wake phrase"] == "not heard"
        rows = driver.find_elements(By.CSS_SELECTOR, "#pipeline-timings tbody tr")
        stages = ["speech_to_text", "intent", "answer", "speech", "total"]
        assert [r.get_attribute("data-stage") for r in rows] == stages
        shown = [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows]
        assert shown == [console_fmt1(answer["timings_ms"][k]) for k in stages]

        player = driver.find_element(By.ID, "pipeline-audio")
        assert player.get_attribute("src") == "data:audio/wav;base64," + answer["audio"]["base64"]
        reply = base64.b64decode(answer["audio"]["base64"])
        seconds = sf.info(io.BytesIO(reply)).duration
        wait(driver, "the reply to load", lambda d: d.execute_script("return arguments[0].readyState >= 1", player), 30)
        assert driver.execute_script("return arguments[0].duration", player) == pytest.approx(seconds, abs=0.01)
        shot(driver, screenshots, "playground-voice-pipeline.png")
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == [], errors  # a CSP refusal of the data: URL would be logged here

        # Leaving the page mid-recording releases the microphone (the stream's track ends).
        driver.execute_script("""
            const open = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
            navigator.mediaDevices.getUserMedia = async (c) => (window.lastStream = await open(c));""")
        driver.find_element(By.ID, "audio-record").click()
        wait(driver, "recording again", lambda d: d.find_elements(By.ID, "audio-recording"))
        assert driver.execute_script("return window.lastStream.getAudioTracks()[0].readyState") == "live"
        driver.execute_script("location.hash = '#/jobs'")
        wait(driver, "the microphone released",
             lambda d: d.execute_script("return window.lastStream.getAudioTracks()[0].readyState") == "ended", 10)  # fmt: skip
    assert SECURITY_HEADERS["content-security-policy"].count("data:") == 2  # img-src and media-src, nothing else


@pytest.mark.slow  # trains a CLINC150 intent model (~10 s), starts a control plane and a pipeline replica
def test_a_deployed_voice_pipeline_answers_the_microphone(home: Path, tmp_path: Path, screenshots: Path) -> None:
    """The real voice pipeline (docs/voice.md) deployed on a real control plane: the catalog gives it
    an audio hint at 16 kHz, the page records a flite-spoken question from the fake microphone, and
    the transcript, intent and answer shown are the deployment's answer for the WAV the page sent."""
    from selenium.webdriver.common.by import By

    from modelyard.voice import register_pipeline
    from modelyard.workflow import train
    from tests.support.voice import bag_spec, flite_wav, pipeline_spec

    train(bag_spec(), home=home, progress=False)
    register_pipeline(pipeline_spec(), name="assistant", home=home)
    question = tmp_path / "question.wav"
    question.write_bytes(flite_wav("what is the balance of my checking account", "rms", tmp_path))
    fake_mic = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")
    with running_server(home, tmp_path / "server.log") as url:
        made = httpx.post(f"{url}/v1/deployments", json={"name": "voice", "model": "assistant"}, timeout=30)
        assert made.status_code == 201 and made.json()["model"] == "assistant:1", made.text
        deadline = time.monotonic() + 180
        while httpx.get(f"{url}/v1/deployments/voice").json()["status"] != "running":
            assert time.monotonic() < deadline, "the pipeline replica did not start"
            time.sleep(0.5)
        with chromium(*fake_mic, f"--use-file-for-fake-audio-capture={question}") as driver:
            driver.get(url + "/#/playground/voice")
            record = wait(driver, "the Record button", lambda d: d.find_element(By.ID, "audio-record"))
            assert "audio at 16000 Hz" in driver.find_element(By.ID, "view").text
            assert "voice pipeline hears" in driver.find_element(By.ID, "audio-status").text
            assert not driver.find_elements(By.ID, "json-body")  # audio only
            record.click()
            wait(driver, "recording", lambda d: d.find_elements(By.ID, "audio-recording"))
            time.sleep(3.0)
            driver.find_element(By.ID, "audio-stop").click()
            wait(driver, "the transcript", lambda d: d.find_element(By.ID, "pipeline-transcript"), 60)
            sent = base64.b64decode(driver.execute_script("return window.modelyard.playground.lastRecording.base64"))
            text = lambda element_id: driver.find_element(By.ID, element_id).text  # noqa: E731
            shown = {key: text(f"pipeline-{key}") for key in ("transcript", "intent", "answer")}
            shot(driver, screenshots, "playground-voice-pipeline-real.png")
        api = httpx.post(
            f"{url}/v1/deployments/voice/predict", content=sent, headers={"content-type": "audio/wav"}, timeout=60
        )
    assert api.status_code == 200, api.text
    answer = api.json()
    assert shown == {"transcript": answer["transcript"] or "(nothing recognised)", "intent": answer["intent"] or "–",
                     "answer": answer["answer"]}  # fmt: skip
    assert "balance" in answer["transcript"], answer["transcript"]  # the question was heard
