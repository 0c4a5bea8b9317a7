"""MNIST and Fashion-MNIST from their standard IDX files: lookup, optional download, checksums.

Files are looked up as every built-in data set's are (``modelyard.data.lookup``: the source's
``path``, ``$MODELYARD_DATA``, the user cache, ``/usr/share/datasets``, where Debian's
``dataset-fashion-mnist`` installs). Nothing is downloaded unless a URL is configured (option
``url`` or env ``MODELYARD_<NAME>_URL``); downloads are checked against the table below.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import Field

from modelyard._validation import StrictModel
from modelyard.data.access import current_access
from modelyard.data.idx import read_idx
from modelyard.data.lookup import cache_folder, download_verified, search_folders
from modelyard.data.raw import SOURCES, RawData
from modelyard.errors import DataError

__all__ = [
    "IdxDataset",
    "DATASETS",
    "CHECKSUMS",
    "FILES",
    "find_folder",
    "download",
    "load_idx_dataset",
]

log = logging.getLogger(__name__)

FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

# file → (md5 of the published .gz archive, sha256 of the decompressed IDX file).
# Archive md5s: the Fashion-MNIST README and torchvision's MNIST resources. Mirrors (and
# Debian's package) recompress the archives, so a download is also accepted when its
# decompressed content has the published sha256.
CHECKSUMS: dict[str, dict[str, tuple[str, str]]] = {
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": (
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        ),
        "train-labels-idx1-ubyte.gz": (
            "25c81989df183df01b3e8a0aad5dffbe",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        ),
        "t10k-images-idx3-ubyte.gz": (
            "bef4ecab320f06d8554ea6380940ec79",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        ),
        "t10k-labels-idx1-ubyte.gz": (
            "bb300cfdad3c16e7a12a480ee83cd310",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
    },
    "mnist": {
        "train-images-idx3-ubyte.gz": (
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        ),
        "train-labels-idx1-ubyte.gz": (
            "d53e105ee54ea40749a09fcbcd1e9432",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        ),
        "t10k-images-idx3-ubyte.gz": (
            "9fb629c4189551a2d022fa330f9573f3",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        ),
        "t10k-labels-idx1-ubyte.gz": (
            "ec29112dd5afa0611ce80d1b7f02629c",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
    },
}


@dataclass(frozen=True)
class IdxDataset:
    name: str
    title: str
    class_names: tuple[str, ...]
    install_hint: str


DATASETS = {
    "fashion-mnist": IdxDataset(
        "fashion-mnist",
        "Fashion-MNIST",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        "install them with `apt-get install dataset-fashion-mnist`, or ",
    ),
    "mnist": IdxDataset("mnist", "MNIST", tuple(str(i) for i in range(10)), ""),
}


class IdxOptions(StrictModel):
    path_fields: ClassVar[dict[str, bool]] = {"path": True}

    path: str | None = None
    url: str | None = Field(None, min_length=1)


def _present(folder: Path, file: str) -> Path | None:
    for candidate in (folder / file, folder / file.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def find_folder(folders: list[Path]) -> Path | None:
    """The first folder holding all four files (gzipped or not)."""
    for folder in folders:
        if all(_present(folder, f) for f in FILES):
            return folder
    return None


def _hashes(path: Path) -> tuple[str, str]:
    """(md5 of the file, sha256 of its decompressed content)."""
    data = path.read_bytes()
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    try:
        raw = gzip.decompress(data)
    except (OSError, EOFError, zlib.error):
        return md5, ""
    return md5, hashlib.sha256(raw).hexdigest()


def verify(name: str, file: str, path: Path) -> bool:
    """True when ``path`` is the published archive, or a recompressed copy of its content."""
    md5, sha = _hashes(path)
    want_md5, want_sha = CHECKSUMS[name][file]
    return md5 == want_md5 or sha == want_sha


def download(name: str, url: str, folder: Path) -> None:
    """Fetch the missing files of ``name`` from ``url`` into ``folder``, verified and atomic."""
    base = url.rstrip("/")
    for file in FILES:
        if _present(folder, file):
            continue

        def check(tmp: Path, file: str = file) -> str | None:
            if verify(name, file, tmp):
                return None
            return f"expected md5 {CHECKSUMS[name][file][0]} (or the published content), received md5 {_hashes(tmp)[0]}"

        download_verified(f"{base}/{file}", folder / file, check)


def load_idx_dataset(name: str, opts: IdxOptions) -> RawData:
    """Find (or download, when a URL is configured) and read one IDX data set."""
    info = DATASETS[name]
    folders = search_folders(name, opts.path)
    folder = find_folder(folders)
    env = f"MODELYARD_{name.upper().replace('-', '_')}_URL"
    access = current_access()
    if access is not None and opts.url:
        raise access.refuse_url("data.url")
    url = opts.url or os.environ.get(env)
    if folder is None and url:
        target = folders[0] if opts.path is not None else cache_folder(name)  # explicit folder, else the cache
        download(name, url, target)
        folder = target
    if folder is None:
        searched = ", ".join(str(f) for f in folders)
        raise DataError(
            f"{info.title} files not found: looked for {', '.join(FILES)} in {searched}; "
            f"{info.install_hint}put the four files in $MODELYARD_DATA/{name}, "
            f"or set {env} (or the source option `url`) to download them",
            field="data.source",
        )
    paths = {f: _present(folder, f) for f in FILES}
    if access is not None and opts.path is not None:  # a symlinked file may lead out of the folder
        paths = {f: p and access.check_file_in(p, "data.path") for f, p in paths.items()}
    x_train, y_train = _pair(paths[FILES[0]], paths[FILES[1]])
    x_test, y_test = _pair(paths[FILES[2]], paths[FILES[3]])
    return RawData(
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        class_names=list(info.class_names),
        feature_names=None,
        kind="image",
    )


def _pair(images_path: Path | None, labels_path: Path | None) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path, ndim=3)  # type: ignore[arg-type]
    labels = read_idx(labels_path, ndim=1)  # type: ignore[arg-type]
    if images.dtype != np.uint8 or images.shape[1:] != (28, 28):
        raise DataError(
            f"Invalid IDX file {images_path}: expected uint8 images of 28x28, received {images.dtype} {list(images.shape[1:])}"
        )
    if len(images) != len(labels):
        raise DataError(
            f"Invalid IDX files: {images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels"
        )
    if labels.size and int(labels.max()) > 9:
        raise DataError(f"Invalid IDX file {labels_path}: expected labels 0..9, received {int(labels.max())}")
    # Raw pixel values 0..255 as float32, one flat row per image; reshaping is a preprocess step.
    return images.reshape(len(images), -1).astype(np.float32), labels.astype(np.int64)


@SOURCES.component("fashion-mnist", "fmnist", options=IdxOptions)
def fashion_mnist(opts: IdxOptions, *, seed: int) -> RawData:
    """Zalando's Fashion-MNIST: 60k/10k 28x28 grayscale clothing images, 10 classes."""
    return load_idx_dataset("fashion-mnist", opts)


@SOURCES.component("mnist", options=IdxOptions)
def mnist(opts: IdxOptions, *, seed: int) -> RawData:
    """LeCun's MNIST handwritten digits: 60k/10k 28x28 grayscale images, 10 classes."""
    return load_idx_dataset("mnist", opts)
