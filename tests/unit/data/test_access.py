"""The server's data rule (``data.access``): jobs read only under the data folders, never the
store, a device or a symlink out, within a size cap; the CLI (no rule) reads any file."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from modelyard.data import RawData, load_source
from modelyard.data.access import DataAccess, confined
from modelyard.data.idx import encode_idx
from modelyard.errors import DataAccessError, DataError
from modelyard.spec import DataSpec


def _raw(data: dict) -> RawData:
    return load_source(DataSpec.model_validate(data).source, seed=0)


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """(a data folder, the store) side by side."""
    data, home = tmp_path / "data", tmp_path / "home"
    data.mkdir()
    home.mkdir()
    pd.DataFrame({"a": [1.0, 2.0, 3.0], "y": [0, 1, 0]}).to_csv(data / "t.csv", index=False)
    return data, home


def _access(folders: tuple[Path, Path], *more: Path, max_bytes: int = 1 << 20) -> DataAccess:
    data, home = folders
    return DataAccess.server([data, *more], home=home, max_bytes=max_bytes)


def test_a_file_in_a_data_folder_reads_the_same_as_on_the_cli(folders: tuple[Path, Path]) -> None:
    spec = {"source": "csv", "path": str(folders[0] / "t.csv"), "target": "y"}
    with confined(_access(folders)):
        served = _raw(spec)
        relative = _raw({**spec, "path": "t.csv"})  # relative paths resolve against the data folders
    np.testing.assert_array_equal(served.x_train, _raw(spec).x_train)
    np.testing.assert_array_equal(relative.x_train, served.x_train)


def test_a_file_outside_the_folders_is_refused_naming_the_field(folders: tuple[Path, Path], tmp_path: Path) -> None:
    (tmp_path / "secret.csv").write_text("key\nabc\n")
    with confined(DataAccess.server([], home=folders[1], max_bytes=1 << 20)):
        with pytest.raises(DataAccessError) as info:
            _raw({"source": "csv", "path": str(tmp_path / "secret.csv"), "target": "y"})
    assert str(info.value) == (
        f"data.path: '{tmp_path / 'secret.csv'}' is outside the server's data folders "
        "(configured: none; start the server with --data-dir DIR)"
    )
    assert info.value.field == "data.path" and info.value.http_status == 403
    # The CLI (no rule) still reads the user's own file.
    with pytest.raises(DataError, match="'y' not found"):
        _raw({"source": "csv", "path": str(tmp_path / "secret.csv"), "target": "y"})


def test_the_store_dev_and_proc_are_refused_even_inside_a_data_folder(folders: tuple[Path, Path]) -> None:
    data, home = folders
    (home / "server").mkdir()
    (home / "server" / "session.key").write_text("0123abcd\n")
    access = DataAccess.server([folders[0].parent, Path("/")], home=home, max_bytes=1 << 20)
    for path in (home / "server" / "session.key", Path("/dev/zero"), Path("/proc/self/environ")):
        with confined(access), pytest.raises(DataAccessError, match="store or a system folder"):
            _raw({"source": "csv", "path": str(path), "target": "y"})


def test_a_symlink_out_of_the_folder_is_refused(folders: tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = folders
    (tmp_path / "outside.csv").write_text("a,y\n1,0\n")
    (data / "link.csv").symlink_to(tmp_path / "outside.csv")
    with confined(_access(folders)), pytest.raises(DataAccessError, match="through a symlink"):
        _raw({"source": "csv", "path": str(data / "link.csv"), "target": "y"})


def test_an_image_symlinked_out_of_an_image_folder_is_refused(folders: tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = folders
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(tmp_path / "outside.png")
    for name in ("a", "b"):
        (data / "img" / name).mkdir(parents=True)
        Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(data / "img" / name / "0.png")
    (data / "img" / "b" / "1.png").symlink_to(tmp_path / "outside.png")
    assert len(_raw({"source": "images", "path": str(data / "img")}).x_train) == 3  # the CLI follows it
    with confined(_access(folders)), pytest.raises(DataAccessError, match="data.path.*symlink"):
        _raw({"source": "images", "path": str(data / "img")})


def test_a_fifo_is_refused(folders: tuple[Path, Path]) -> None:
    os.mkfifo(folders[0] / "pipe.csv")  # reading it would block the worker forever
    with confined(_access(folders)), pytest.raises(DataAccessError, match="not a regular file"):
        _raw({"source": "csv", "path": str(folders[0] / "pipe.csv"), "target": "y"})


def test_every_path_option_of_npy_is_checked(folders: tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = folders
    for folder in (data, tmp_path):
        np.save(folder / "x.npy", np.zeros((4, 2), dtype=np.float32))
        np.save(folder / "y.npy", np.zeros(4, dtype=np.int64))
    spec = {"source": "npy", "x": str(data / "x.npy"), "y": str(data / "y.npy")}
    with confined(_access(folders)):
        assert len(_raw(spec).x_train) == 4
        with pytest.raises(DataAccessError, match="^data.x_test: "):
            _raw({**spec, "x_test": str(tmp_path / "x.npy"), "y_test": str(data / "y.npy")})


def test_sizes_are_capped_files_folders_and_what_archives_unpack_to(folders: tuple[Path, Path]) -> None:
    data, _ = folders
    (data / "big.csv").write_text("a,y\n" + "1,0\n" * 2000)
    np.savez_compressed(data / "zeros.npz", x=np.zeros((2000, 10)), y=np.zeros(2000))  # ~1 KB, unpacks to 176 KB
    (data / "mnist").mkdir()
    for file in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        (data / "mnist" / f"{file}.gz").write_bytes(gzip.compress(encode_idx(np.zeros((200, 28, 28), np.uint8))))
    for file in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        (data / "mnist" / f"{file}.gz").write_bytes(gzip.compress(encode_idx(np.zeros(200, np.uint8))))
    # The archives themselves are under the cap: what they unpack to is over it.
    assert max(p.stat().st_size for p in [data / "zeros.npz", *(data / "mnist").iterdir()]) < 5000
    access = _access(folders, max_bytes=5000)
    cases = [
        {"source": "csv", "path": str(data / "big.csv"), "target": "y"},
        {"source": "npz", "path": str(data / "zeros.npz")},
        {"source": "mnist", "path": str(data / "mnist")},
    ]
    for spec in cases:
        assert len(_raw(spec).x_train) > 0  # the CLI has no cap
        with confined(access), pytest.raises(DataAccessError, match="larger than the server's limit of 5000 bytes"):
            _raw(spec)


def test_a_job_may_not_make_the_server_download(folders: tuple[Path, Path]) -> None:
    (folders[0] / "m").mkdir()
    with confined(_access(folders)), pytest.raises(DataAccessError, match="^data.url: .*download"):
        _raw({"source": "mnist", "path": str(folders[0] / "m"), "url": "file:///etc"})
