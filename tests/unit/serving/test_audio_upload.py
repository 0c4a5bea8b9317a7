"""WAV/FLAC uploads to the predict route: decoded like the data sources, limited, and 4xx for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelyard.audio_decode import fit_length
from modelyard.predict import Predictor
from modelyard.serving import ServeConfig, create_app
from tests.support.audio import tone, wav_bytes
from tests.support.serving import assert_same_predictions, client, register

pytestmark = pytest.mark.anyio

ROUTE = "/v1/models/wav/predict"


def _served(home: Path, **config: object) -> tuple[Predictor, object]:
    model = Predictor.load(register("wav", home), home=home)
    return model, create_app([model], ServeConfig(backend="torch", max_wait_ms=0, **config))


async def test_a_wav_body_or_multipart_files_predict_like_the_decoded_samples(home: Path) -> None:
    model, app = _served(home)
    short, long = tone(0.05, 8000, 300.0), tone(0.3, 8000, 900.0)  # padded / trimmed to 800 samples
    want = model.predict(np.stack([fit_length(short, 800), fit_length(long, 800)]))
    async with client(app) as http:
        one = await http.post(ROUTE, content=wav_bytes(short, 8000), headers={"content-type": "audio/wav"})
        flac = await http.post(ROUTE, content=wav_bytes(long, 8000, "FLAC"), headers={"content-type": "audio/flac"})
        both = await http.post(
            ROUTE,
            files=[("a", ("a.wav", wav_bytes(short, 8000), "audio/wav")), ("b", ("b.wav", wav_bytes(long, 8000)))],
        )
    assert one.status_code == flac.status_code == both.status_code == 200, one.text
    got = [one.json()["predictions"][0], flac.json()["predictions"][0]]
    assert_same_predictions(both.json()["predictions"], got, atol=1e-5)  # batched together: float rounding only
    # 16-bit PCM round trip: within one quantization step of the float samples
    np.testing.assert_allclose([p["probabilities"] for p in got], want, atol=1e-3)


async def test_bad_audio_gets_the_4xx_that_names_the_limit(home: Path) -> None:
    _, app = _served(home, max_audio_seconds=2.0, max_body_bytes=64 * 1024)
    secret = b"secret-bytes-0123456789"
    cases = [
        (b"not a wav " + secret, "audio/wav", 400, "expected a WAV or FLAC file"),
        (b"", "audio/wav", 400, "empty"),
        (b"RIFF\xff\xff\xff\x7fWAVEfmt " + secret, "audio/wav", 400, "corrupt or unsupported WAV data"),
        (wav_bytes(np.zeros(0, np.float32), 8000), "audio/wav", 400, "zero length"),
        (wav_bytes(tone(3.0, 8000), 8000), "audio/wav", 422, "too long: expected at most 2 s, received 3.0 s"),
        (wav_bytes(tone(0.1, 16000), 16000), "audio/wav", 422, "expected 8000 Hz, received 16000 Hz"),
        (wav_bytes(tone(5.0, 8000), 8000), "audio/wav", 413, "too large: expected at most 65536 bytes"),
        (wav_bytes(tone(0.1, 8000), 8000), "audio/ogg", 415, "Unsupported Content-Type 'audio/ogg'"),
    ]
    async with client(app) as http:
        for body, ctype, status, message in cases:
            response = await http.post(ROUTE, content=body, headers={"content-type": ctype})
            assert response.status_code == status, (message, response.text)
            text = response.text
            assert message in text and "secret" not in text and "BytesIO" not in text


async def test_resampling_is_opt_in_and_other_models_refuse_audio(home: Path) -> None:
    model, app = _served(home, resample_audio=True)
    clip = tone(0.1, 16000, 440.0)
    async with client(app) as http:
        ok = await http.post(ROUTE, content=wav_bytes(clip, 16000), headers={"content-type": "audio/wav"})
    assert ok.status_code == 200
    clf = Predictor.load(register("clf", home), home=home)
    async with client(create_app([clf], ServeConfig(backend="torch"))) as http:
        refused = await http.post(
            "/v1/models/clf/predict", content=wav_bytes(clip, 8000), headers={"content-type": "audio/wav"}
        )
    assert refused.status_code == 415 and "does not take audio" in refused.text
