"""IDX parsing, MNIST-family lookup, checksums and verified downloads."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from modelyard.components import ComponentSpec
from modelyard.data import load_source
from modelyard.data.idx import encode_idx, parse_idx, read_idx
from modelyard.data.mnist import CHECKSUMS, FILES, verify
from modelyard.errors import DataError
from modelyard.spec import DataSpec

SYSTEM = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not all((SYSTEM / f).is_file() for f in FILES), reason="dataset-fashion-mnist not installed"
)


def _source(**options: object) -> ComponentSpec:
    return DataSpec.model_validate({"source": "fashion-mnist", **options}).source


def _write_tiny_set(folder: Path, n_train: int = 5, n_test: int = 3, fill: int = 7) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = np.full((n, 28, 28), fill, dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(encode_idx(images)))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(encode_idx(labels)))


# -- the parser ---------------------------------------------------------------------------


def test_parse_hand_built_ubyte_file() -> None:
    data = bytes([0, 0, 0x08, 3]) + struct.pack(">III", 2, 2, 3) + bytes(range(12))
    arr = parse_idx(data)
    assert arr.dtype == np.uint8 and arr.shape == (2, 2, 3)
    np.testing.assert_array_equal(arr, np.arange(12, dtype=np.uint8).reshape(2, 2, 3))


def test_parse_big_endian_int32_values() -> None:
    data = bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 3) + struct.pack(">iii", 1, -2, 70000)
    arr = parse_idx(data)
    assert arr.dtype.byteorder in ("=", "<", "|") and arr.tolist() == [1, -2, 70000]


def test_encode_round_trips_and_gz_files_read(tmp_path: Path) -> None:
    arr = np.random.default_rng(0).integers(0, 256, size=(4, 28, 28), dtype=np.uint8)
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(encode_idx(arr)))
    np.testing.assert_array_equal(read_idx(path, ndim=3), arr)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (bytes([1, 0, 8, 1]) + struct.pack(">I", 2) + b"ab", "magic"),
        (bytes([0, 0, 0x42, 1]) + struct.pack(">I", 2) + b"ab", "magic"),
        (bytes([0, 0, 8, 3]) + struct.pack(">III", 2, 28, 28) + bytes(100), "truncated"),
        (bytes([0, 0, 8, 1]) + struct.pack(">I", 2) + b"abc", "trailing"),
        (bytes([0, 0, 8, 3]) + b"\x00\x00", "header"),
    ],
)
def test_corrupt_idx_raises_data_error_naming_file(tmp_path: Path, data: bytes, words: str) -> None:
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(data)
    with pytest.raises(DataError, match=words) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_gzip_raises_data_error(tmp_path: Path) -> None:
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    labels = np.random.default_rng(0).integers(0, 10, 1000, dtype=np.uint8)
    data = gzip.compress(encode_idx(labels))
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="Corrupt IDX file .*train-labels"):
        read_idx(path)


def test_wrong_number_of_dimensions(tmp_path: Path) -> None:
    path = tmp_path / "labels"
    path.write_bytes(encode_idx(np.zeros((2, 2), np.uint8)))
    with pytest.raises(DataError, match="expected 1 dimension"):
        read_idx(path, ndim=1)


# -- the real Fashion-MNIST files -----------------------------------------------------------


@needs_fashion
def test_real_fashion_mnist_shapes_and_labels() -> None:
    raw = load_source(_source(), seed=0)
    assert raw.x_train.shape == (60000, 784) and raw.x_train.dtype == np.float32
    assert raw.x_test is not None and raw.y_test is not None
    assert raw.x_test.shape == (10000, 784) and raw.y_test.shape == (10000,)
    assert raw.y_train.dtype == np.int64
    assert raw.x_train.min() == 0 and raw.x_train.max() == 255
    # Fashion-MNIST is balanced: 6000 training and 1000 test images per class.
    np.testing.assert_array_equal(np.bincount(raw.y_train), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(raw.y_test), [1000] * 10)
    assert raw.class_names is not None and raw.class_names[0] == "T-shirt/top" and raw.class_names[9] == "Ankle boot"
    assert raw.kind == "image"


@needs_fashion
@pytest.mark.parametrize("file", FILES)
def test_checksum_table_matches_installed_files(file: str) -> None:
    content = gzip.decompress((SYSTEM / file).read_bytes())
    assert hashlib.sha256(content).hexdigest() == CHECKSUMS["fashion-mnist"][file][1]
    assert verify("fashion-mnist", file, SYSTEM / file)


def test_checksum_table_is_complete() -> None:
    for table in CHECKSUMS.values():
        assert set(table) == set(FILES)
        for md5, sha in table.values():
            assert len(md5) == 32 and len(sha) == 64


# -- lookup ------------------------------------------------------------------------------


def test_explicit_empty_path_raises_with_install_hint(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as info:
        load_source(_source(path=str(empty)), seed=0)
    message = str(info.value)
    assert str(empty) in message and "apt-get install dataset-fashion-mnist" in message
    assert "$MODELYARD_DATA/fashion-mnist" in message and "\n" not in message


def test_explicit_path_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found for `data.path`"):
        load_source(_source(path=str(tmp_path / "nowhere")), seed=0)


def test_modelyard_data_wins_over_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_tiny_set(tmp_path / "data" / "fashion-mnist", n_train=5, fill=1)
    _write_tiny_set(tmp_path / "cache" / "modelyard" / "fashion-mnist", n_train=6, fill=2)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("MODELYARD_DATA", str(tmp_path / "data"))
    raw = load_source(_source(), seed=0)
    assert raw.x_train.shape == (5, 784) and raw.x_train.max() == 1
    monkeypatch.delenv("MODELYARD_DATA")
    raw = load_source(_source(), seed=0)
    assert raw.x_train.shape == (6, 784) and raw.x_train.max() == 2


def test_relative_path_resolves_against_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_tiny_set(tmp_path / "fm")
    monkeypatch.chdir(tmp_path)
    assert load_source(_source(path="fm"), seed=0).x_train.shape == (5, 784)


@pytest.mark.skipif(Path("/usr/share/datasets/mnist").exists(), reason="MNIST installed system-wide")
def test_missing_mnist_lists_searched_folders(tmp_path: Path) -> None:
    spec = DataSpec.model_validate({"source": "mnist"}).source
    with pytest.raises(DataError) as info:
        load_source(spec, seed=0)
    message = str(info.value)
    assert str(tmp_path / "cache" / "modelyard" / "mnist") in message and "/usr/share/datasets/mnist" in message
    assert "MODELYARD_MNIST_URL" in message


# -- downloads ---------------------------------------------------------------------------


@needs_fashion
def test_download_from_url_verifies_and_writes_files(tmp_path: Path) -> None:
    target = tmp_path / "dl"
    target.mkdir()
    raw = load_source(_source(path=str(target), url=SYSTEM.as_uri()), seed=0)
    assert raw.x_train.shape == (60000, 784)
    assert sorted(p.name for p in target.iterdir()) == sorted(FILES)  # no temp files left behind


def test_download_with_bad_checksum_saves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror, target = tmp_path / "mirror", tmp_path / "target"
    _write_tiny_set(mirror)
    target.mkdir()
    monkeypatch.setenv("MODELYARD_FASHION_MNIST_URL", mirror.as_uri())
    with pytest.raises(DataError, match="Checksum mismatch for .*train-images-idx3-ubyte.gz"):
        load_source(_source(path=str(target)), seed=0)
    assert list(target.iterdir()) == []


def test_download_failure_is_a_data_error(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(DataError, match="Cannot download"):
        load_source(_source(path=str(target), url=(tmp_path / "no-mirror").as_uri()), seed=0)


def test_verify_rejects_other_content(tmp_path: Path) -> None:
    path = tmp_path / "f.gz"
    path.write_bytes(gzip.compress(b"not mnist"))
    assert not verify("mnist", FILES[0], path)
    shutil.copy(path, tmp_path / "g")
    assert not verify("mnist", FILES[0], tmp_path / "g")
