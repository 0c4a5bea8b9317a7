"""Every file of a version is checked against the sha256 recorded at registration."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from modelyard.errors import StoreError
from modelyard.predict import Predictor
from modelyard.store import ModelStore
from modelyard.store.checksums import CHECKSUMS_FILE
from tests.support.cli import run_cli
from tests.support.serving import instances, register


def _flip_one_float(weights: Path) -> None:
    """Overwrite one float32 of the tensor data (after the safetensors header): the file still loads."""
    data = bytearray(weights.read_bytes())
    header = struct.unpack("<Q", data[:8])[0]
    offset = 8 + header + 4
    data[offset : offset + 4] = struct.pack("<f", 1234.5)
    weights.write_bytes(bytes(data))


def test_every_file_of_a_version_has_its_digest(home: Path) -> None:
    version = ModelStore(home).get(register("clf", home))
    digests = json.loads((version.path / CHECKSUMS_FILE).read_text())["sha256"]
    assert set(digests) == {p.name for p in version.path.iterdir() if p.name != CHECKSUMS_FILE}


def test_an_overwritten_float_is_refused_with_one_line(home: Path) -> None:
    ref = register("clf", home)
    x = instances("clf", 3)
    before = Predictor.load(ref, home=home).predict(x)
    version = ModelStore(home).get(ref)
    _flip_one_float(version.path / "weights.safetensors")
    with pytest.raises(StoreError) as info:
        Predictor.load(ref, home=home)
    message = info.value.message
    assert "weights.safetensors is not the file registered" in message and "restore" in message
    assert "\n" not in message
    cli = run_cli("--home", str(home), "predict", ref, "-")  # the CLI: one line, the store's exit code
    assert cli.code == 5 and cli.err.startswith("error: Model clf:1's weights.safetensors") and cli.err.count("\n") == 1
    assert np.isfinite(before).all()


def test_a_changed_preprocessing_file_is_refused_too(home: Path) -> None:
    version = ModelStore(home).get(register("clf", home))
    path = version.path / "preprocess.json"
    path.write_text(path.read_text().replace('"task"', ' "task"', 1))
    with pytest.raises(StoreError, match="preprocess.json is not the file registered"):
        Predictor.load(version.ref, home=home)


def test_a_version_from_before_checksums_still_loads(home: Path) -> None:
    ref = register("clf", home)
    version = ModelStore(home).get(ref)
    (version.path / CHECKSUMS_FILE).unlink()
    x = instances("clf", 2)
    assert Predictor.load(ref, home=home).predict(x).shape[0] == 2


def test_unreadable_weights_of_a_version_without_checksums_are_one_line(home: Path) -> None:
    version = ModelStore(home).get(register("clf", home))
    (version.path / CHECKSUMS_FILE).unlink()
    (version.path / "weights.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(StoreError, match=r"Weights of model clf:1 are unreadable"):
        Predictor.load(version.ref, home=home)
