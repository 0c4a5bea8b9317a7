"""Audio sources: the `audio` folder source (sub-folders, file-name pattern, csv) and the built-in fsdd."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelyard.audio_decode import AudioLimits, decode_audio, fit_length
from modelyard.components import ComponentSpec
from modelyard.data import load_source
from modelyard.data.fsdd import FILES, SHA256, manifest_sha256
from modelyard.errors import DataError, InvalidInstancesError
from tests.support.audio import tone, wav_bytes, write_wav
from tests.support.datasets import shared_dataset


def _src(type_: str, **options: object):
    return load_source(ComponentSpec(type=type_, options=options))


def test_fsdd_has_2500_recordings_of_five_speakers_and_its_own_split() -> None:
    root = shared_dataset("fsdd")
    raw = _src("fsdd", path=str(root))
    assert raw.kind == "audio" and raw.x_train.shape == (2250, 8000) and raw.x_test.shape == (250, 8000)
    assert raw.class_names == [str(d) for d in range(10)]
    assert np.bincount(raw.y_test).tolist() == [25] * 10  # indexes 0-4 of 10 digits x 5 speakers
    # The test recordings are exactly the files with index 0-4, decoded as soundfile reads them.
    import soundfile as sf

    first, rate = sf.read(root / "recordings" / "0_george_0.wav", dtype="float32")
    assert rate == 8000
    np.testing.assert_array_equal(raw.x_test[0], fit_length(first, 8000))
    held_out = _src("fsdd", path=str(root), test_speaker="lucas")
    assert held_out.x_train.shape == (2000, 8000) and held_out.x_test.shape == (500, 8000)
    assert manifest_sha256(root / "recordings") == SHA256


def test_fsdd_downloads_file_by_file_and_keeps_only_a_matching_set(tmp_path: Path) -> None:
    root = shared_dataset("fsdd")
    target = tmp_path / "fsdd"
    target.mkdir()
    raw = _src("fsdd", path=str(target), url=(root / "recordings").as_uri(), duration=0.5)
    assert raw.x_train.shape == (2250, 4000) and (target / "recordings" / "9_theo_49.wav").is_file()
    # One changed file upstream: nothing is kept, and the error names both checksums.
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in FILES:
        (mirror / name).symlink_to(root / "recordings" / name)
    (mirror / "0_george_0.wav").unlink()
    (mirror / "0_george_0.wav").write_bytes((root / "recordings" / "0_george_1.wav").read_bytes())
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=f"Checksum mismatch for the FSDD recordings .*expected {SHA256}, received"):
        _src("fsdd", path=str(empty), url=mirror.as_uri())
    assert list(empty.iterdir()) == []  # no recordings folder, no staging folder left behind


def test_fsdd_not_found_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"FSDD not found: looked for a recordings folder in .*MODELYARD_FSDD_URL"):
        _src("fsdd", path=str(tmp_path))


def test_audio_folder_labels_from_subfolders_pattern_and_csv(tmp_path: Path) -> None:
    for label, freq in (("no", 300.0), ("yes", 600.0)):
        for i in range(2):
            write_wav(tmp_path / "folders" / label / f"{i}.wav", tone(0.25 + 0.5 * i, 8000, freq), 8000)
            write_wav(tmp_path / "flat" / f"{label}_{i}.flac", tone(0.25, 16000, freq), 16000, fmt="FLAC")
    (tmp_path / "flat" / "labels.csv").write_text("file,label\nno_0.flac,n\nyes_0.flac,y\nyes_1.flac,y\n")
    by_folder = _src("audio", path=str(tmp_path / "folders"), sample_rate=8000, duration=0.5)
    assert by_folder.kind == "audio" and by_folder.class_names == ["no", "yes"]
    assert by_folder.x_train.shape == (4, 4000) and by_folder.y_train.tolist() == [0, 0, 1, 1]
    assert np.all(by_folder.x_train[0, 2000:] == 0)  # 0.25 s padded to 0.5 s at the end
    np.testing.assert_allclose(by_folder.x_train[1], tone(0.75, 8000, 300.0)[:4000], atol=1e-4)  # trimmed
    by_name = _src(
        "audio", path=str(tmp_path / "flat"), labels="pattern", pattern=r"^(?P<label>[a-z]+)_", sample_rate=8000
    )
    assert by_name.class_names == ["no", "yes"] and by_name.x_train.shape == (4, 8000)
    # Resampled from 16 kHz: the 300 Hz tone keeps its frequency.
    spectrum = np.abs(np.fft.rfft(by_name.x_train[0, :2000]))
    assert np.argmax(spectrum) * 8000 / 2000 == pytest.approx(300.0, abs=4.0)
    by_csv = _src("audio", path=str(tmp_path / "flat"), labels="csv", csv="labels.csv", sample_rate=16000)
    assert by_csv.class_names == ["n", "y"] and by_csv.y_train.tolist() == [0, 1, 1]


def test_bad_audio_files_are_one_line_errors_naming_the_file_and_quoting_nothing(tmp_path: Path) -> None:
    secret = b"secret-contents-42"
    cases = {
        "text.wav": (secret * 4, "expected a WAV or FLAC file"),
        "empty.wav": (b"", "received an empty file"),
        "corrupt.wav": (b"RIFF\x00\x00\x00\x00WAVEfmt " + secret, "corrupt or unsupported WAV data"),
        "silence.wav": (wav_bytes(np.zeros(0, dtype=np.float32), 8000), "zero length"),
    }
    for name, (data, expected) in cases.items():
        folder = tmp_path / name.split(".")[0] / "a"
        (folder / name).parent.mkdir(parents=True)
        (folder / name).write_bytes(data)
        with pytest.raises(DataError) as err:
            _src("audio", path=str(folder.parent), sample_rate=8000)
        message = str(err.value)
        assert expected in message and name in message and "\n" not in message
        assert "secret" not in message and "BytesIO" not in message


def test_decode_limits_duration_and_rate_before_decoding() -> None:
    long = wav_bytes(tone(3.0, 8000), 8000)
    with pytest.raises(InvalidInstancesError, match=r"too long: expected at most 2 s, received 3.0 s"):
        decode_audio(
            long, source="u.wav", limits=AudioLimits(max_seconds=2.0), error=DataError, too_long=InvalidInstancesError
        )
    with pytest.raises(InvalidInstancesError, match=r"expected 16000 Hz, received 8000 Hz"):
        decode_audio(
            long,
            source="u.wav",
            limits=AudioLimits(sample_rate=16000, resample=False),
            error=DataError,
            too_long=InvalidInstancesError,
        )
    stereo = np.stack([tone(0.1, 8000), -tone(0.1, 8000)], axis=1)
    samples, rate = decode_audio(wav_bytes(stereo, 8000), source="s.wav", limits=AudioLimits(), error=DataError)
    assert rate == 8000 and samples.shape == (800,) and np.abs(samples).max() < 1e-4  # channels averaged


def test_fit_length_pads_and_trims() -> None:
    x = np.arange(1, 6, dtype=np.float32)
    assert fit_length(x, 3).tolist() == [1, 2, 3] and fit_length(x, 3, "center").tolist() == [2, 3, 4]
    assert fit_length(x, 7).tolist() == [1, 2, 3, 4, 5, 0, 0] and fit_length(x, 7, "center").tolist() == [
        0,
        1,
        2,
        3,
        4,
        5,
        0,
    ]
