"""File sources: csv, parquet, npz and image folders, including every bad-input case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from modelyard.data import RawData, load_source
from modelyard.errors import DataError
from modelyard.spec import DataSpec


def _raw(data: dict) -> RawData:
    return load_source(DataSpec.model_validate(data).source, seed=0)


@pytest.fixture
def table() -> pd.DataFrame:
    return pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [0, 1, 0, 1], "label": ["cat", "dog", "cat", "bird"]})


# -- csv / parquet -----------------------------------------------------------------------


def test_csv_features_and_string_target(tmp_path: Path, table: pd.DataFrame) -> None:
    table.to_csv(tmp_path / "t.csv", index=False)
    raw = _raw({"source": "csv", "path": str(tmp_path / "t.csv"), "target": "label"})
    np.testing.assert_array_equal(raw.x_train, [[1, 0], [2, 1], [3, 0], [4, 1]])
    assert raw.x_train.dtype == np.float32 and raw.feature_names == ["a", "b"]
    assert raw.class_names == ["bird", "cat", "dog"]
    np.testing.assert_array_equal(raw.y_train, [1, 2, 1, 0])
    assert raw.y_train.dtype == np.int64 and raw.x_test is None


def test_csv_feature_subset_numeric_target_and_relative_path(
    tmp_path: Path, table: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    table.to_csv(tmp_path / "t.csv", index=False)
    monkeypatch.chdir(tmp_path)
    raw = _raw({"source": "csv", "path": "t.csv", "target": "a", "features": ["b"]})
    np.testing.assert_array_equal(raw.x_train[:, 0], [0, 1, 0, 1])
    np.testing.assert_array_equal(raw.y_train, [1.0, 2.0, 3.0, 4.0])
    assert raw.class_names is None and raw.feature_names == ["b"]


def test_csv_missing_target_column_never_quotes_the_header(tmp_path: Path, table: pd.DataFrame) -> None:
    # The header is the file's first line: quoting it would hand any file's first line to a job.
    table.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError) as info:
        _raw({"source": "csv", "path": str(tmp_path / "t.csv"), "target": "lable"})
    message = str(info.value)
    assert "`data.target`" in message and "'lable'" in message and "3 columns" in message
    assert "label" not in message.replace("'lable'", "") and "a, b" not in message


def test_csv_missing_feature_column(tmp_path: Path, table: pd.DataFrame) -> None:
    table.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match="`data.features`.*'c' not found"):
        _raw({"source": "csv", "path": str(tmp_path / "t.csv"), "target": "label", "features": ["a", "c"]})


def test_csv_nan_feature_names_column_and_row(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a,b,y\n1,2,0\n3,,1\n5,6,0\n")
    with pytest.raises(DataError, match=r"column 'b'.*nan.*data row 2 \(line 3\)"):
        _raw({"source": "csv", "path": str(tmp_path / "t.csv"), "target": "y"})


def test_csv_infinite_feature(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a,y\n1,0\ninf,1\n")
    with pytest.raises(DataError, match="column 'a'.*inf"):
        _raw({"source": "csv", "path": str(tmp_path / "t.csv"), "target": "y"})


def test_csv_text_feature_says_one_hot_is_not_automatic(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("colour,size,y\nred,1,0\nblue,2,1\n")
    with pytest.raises(DataError, match="column 'colour'.*data row 1.*one-hot") as info:
        _raw({"source": "csv", "path": str(tmp_path / "t.csv"), "target": "y"})
    assert "\n" not in str(info.value) and "red" not in str(info.value)


@pytest.mark.parametrize(("content", "words"), [("", "empty"), ("a,y\n", "no data rows")])
def test_csv_empty_file(tmp_path: Path, content: str, words: str) -> None:
    (tmp_path / "t.csv").write_text(content)
    with pytest.raises(DataError, match=words):
        _raw({"source": "csv", "path": str(tmp_path / "t.csv"), "target": "y"})


def test_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found for `data.path`.*nope.csv"):
        _raw({"source": "csv", "path": str(tmp_path / "nope.csv"), "target": "y"})


def test_csv_missing_target_value(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a,y\n1,0\n2,\n")
    with pytest.raises(DataError, match="target column 'y'.*missing value at data row 2"):
        _raw({"source": "csv", "path": str(tmp_path / "t.csv"), "target": "y"})


def test_parquet_round_trip_and_missing_target(tmp_path: Path, table: pd.DataFrame) -> None:
    table.to_parquet(tmp_path / "t.parquet")
    raw = _raw({"source": "parquet", "path": str(tmp_path / "t.parquet"), "target": "label"})
    np.testing.assert_array_equal(raw.x_train, table[["a", "b"]].to_numpy(np.float32))
    assert raw.class_names == ["bird", "cat", "dog"]
    with pytest.raises(DataError, match="'labels' not found.*3 columns") as info:
        _raw({"source": "parquet", "path": str(tmp_path / "t.parquet"), "target": "labels"})
    assert "'label'" not in str(info.value)


def test_parquet_nan_feature(tmp_path: Path) -> None:
    pd.DataFrame({"a": [1.0, np.nan], "y": [0, 1]}).to_parquet(tmp_path / "t.parquet")
    with pytest.raises(DataError, match="column 'a'.*row 1"):
        _raw({"source": "parquet", "path": str(tmp_path / "t.parquet"), "target": "y"})


def test_parquet_corrupt_file(tmp_path: Path) -> None:
    (tmp_path / "t.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="Cannot read Parquet file"):
        _raw({"source": "parquet", "path": str(tmp_path / "t.parquet"), "target": "y"})


# -- npz ---------------------------------------------------------------------------------


def test_npz_with_test_keys(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x, xt = rng.normal(size=(6, 3)), rng.normal(size=(2, 3))
    np.savez(tmp_path / "d.npz", feats=x, labels=np.array([0, 1, 2, 0, 1, 2]), ft=xt, lt=np.array([1, 2]))
    raw = _raw(
        {"source": "npz", "path": str(tmp_path / "d.npz"), "x": "feats", "y": "labels", "x_test": "ft", "y_test": "lt"}
    )
    np.testing.assert_allclose(raw.x_train, x.astype(np.float32))
    assert raw.x_test is not None and raw.x_test.shape == (2, 3) and raw.y_train.dtype == np.int64


def test_npz_string_labels_and_image_kind(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 1, 4, 4), np.uint8), y=np.array(["b", "a", "b"]))
    raw = _raw({"source": "npz", "path": str(tmp_path / "d.npz")})
    assert raw.kind == "image" and raw.class_names == ["a", "b"]
    np.testing.assert_array_equal(raw.y_train, [1, 0, 1])


def test_npz_object_array_is_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.array([[1, 2], "oops"], dtype=object), y=np.array([0, 1]))
    with pytest.raises(DataError, match="'x'.*Python objects"):
        _raw({"source": "npz", "path": str(tmp_path / "d.npz")})


def test_npz_missing_key_counts_the_arrays_without_naming_them(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", inputs=np.zeros((2, 2)), y=np.zeros(2))
    with pytest.raises(DataError, match="`data.x`.*'x' not found.*2 arrays") as info:
        _raw({"source": "npz", "path": str(tmp_path / "d.npz")})
    assert "inputs" not in str(info.value)


def test_npz_not_an_archive(tmp_path: Path) -> None:
    np.save(tmp_path / "d.npy", np.zeros(3))
    with pytest.raises(DataError, match="single .npy"):
        _raw({"source": "npz", "path": str(tmp_path / "d.npy")})
    (tmp_path / "e.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="Cannot read"):
        _raw({"source": "npz", "path": str(tmp_path / "e.npz")})


def test_npz_sequence_ids_stay_integers(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.array([[1, 2, 3], [4, 5, 6]]), y=np.array([0, 1]))
    raw = _raw({"source": "npz", "path": str(tmp_path / "d.npz"), "kind": "sequence"})
    assert raw.x_train.dtype == np.int64 and raw.kind == "sequence"


# -- image folders -----------------------------------------------------------------------


def _image_folder(root: Path, sizes: dict[str, list[tuple[int, int]]], mode: str = "L") -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    pixels: dict[str, list[np.ndarray]] = {}
    for name, shapes in sizes.items():
        (root / name).mkdir(parents=True)
        for i, (h, w) in enumerate(shapes):
            shape = (h, w) if mode == "L" else (h, w, 3)
            arr = rng.integers(0, 256, size=shape, dtype=np.uint8)
            Image.fromarray(arr, mode=mode).save(root / name / f"{i}.png")
            pixels.setdefault(name, []).append(arr)
    return pixels


def test_images_grayscale_folder(tmp_path: Path) -> None:
    pixels = _image_folder(tmp_path / "imgs", {"dog": [(5, 4)] * 2, "cat": [(5, 4)] * 3})
    raw = _raw({"source": "images", "path": str(tmp_path / "imgs")})
    assert raw.kind == "image" and raw.class_names == ["cat", "dog"]
    assert raw.x_train.shape == (5, 1, 5, 4) and raw.x_train.dtype == np.float32
    np.testing.assert_array_equal(raw.y_train, [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(raw.x_train[0, 0], pixels["cat"][0])
    np.testing.assert_array_equal(raw.x_train[4, 0], pixels["dog"][1])


def test_images_rgb_channels_first(tmp_path: Path) -> None:
    pixels = _image_folder(tmp_path / "imgs", {"a": [(3, 2)], "b": [(3, 2)]}, mode="RGB")
    raw = _raw({"source": "images", "path": str(tmp_path / "imgs"), "mode": "RGB"})
    assert raw.x_train.shape == (2, 3, 3, 2)
    np.testing.assert_array_equal(raw.x_train[1], pixels["b"][0].transpose(2, 0, 1))


def test_image_of_wrong_size_names_file_and_sizes(tmp_path: Path) -> None:
    _image_folder(tmp_path / "imgs", {"a": [(5, 4)], "b": [(5, 4), (6, 4)]})
    with pytest.raises(DataError) as info:
        _raw({"source": "images", "path": str(tmp_path / "imgs")})
    message = str(info.value)
    assert str(tmp_path / "imgs" / "b" / "1.png") in message
    assert "expected 5x4" in message and "received 6x4" in message and "resize" in message


def test_images_resize_and_explicit_size(tmp_path: Path) -> None:
    _image_folder(tmp_path / "imgs", {"a": [(5, 4)], "b": [(6, 4)]})
    raw = _raw({"source": "images", "path": str(tmp_path / "imgs"), "resize": True, "size": [8, 8]})
    assert raw.x_train.shape == (2, 1, 8, 8)


def test_images_train_test_subfolders(tmp_path: Path) -> None:
    _image_folder(tmp_path / "imgs" / "train", {"a": [(2, 2)] * 2, "b": [(2, 2)] * 2})
    _image_folder(tmp_path / "imgs" / "test", {"b": [(2, 2)]})
    raw = _raw({"source": "images", "path": str(tmp_path / "imgs")})
    assert raw.x_train.shape == (4, 1, 2, 2) and raw.x_test is not None and raw.x_test.shape == (1, 1, 2, 2)
    assert raw.y_test is not None and raw.y_test.tolist() == [1]


def test_images_bad_folders(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="one sub-folder of images per class"):
        _raw({"source": "images", "path": str(tmp_path / "empty")})
    (tmp_path / "noimg" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="class 'a' holds no PNG or JPEG"):
        _raw({"source": "images", "path": str(tmp_path / "noimg")})
    (tmp_path / "broken" / "a").mkdir(parents=True)
    (tmp_path / "broken" / "a" / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="Cannot decode image .*x.png"):
        _raw({"source": "images", "path": str(tmp_path / "broken")})
    with pytest.raises(DataError, match="expected a folder"):
        _raw({"source": "images", "path": str(tmp_path / "broken" / "a" / "x.png")})
