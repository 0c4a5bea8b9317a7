"""A folder of images, one sub-folder per class (``cats/1.png``, ``dogs/7.jpg``...).

When the folder holds ``train/`` and ``test/`` sub-folders, each laid out that way, they
are the official training and test splits. Images become float32 ``[N, C, H, W]`` with
raw values 0..255; every image must have the same size unless ``resize: true``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, PositiveInt

from modelyard._validation import StrictModel
from modelyard.data.access import current_access
from modelyard.data.raw import SOURCES, RawData, resolve_path
from modelyard.errors import DataError

__all__ = ["ImagesOptions", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class ImagesOptions(StrictModel):
    path_fields: ClassVar[dict[str, bool]] = {"path": True}

    path: str = Field(min_length=1)
    size: tuple[PositiveInt, PositiveInt] | None = None  # [H, W]
    mode: Literal["L", "RGB"] = "L"
    resize: bool = False


@SOURCES.component("images", "image_folder", options=ImagesOptions, primary="path")
def images(opts: ImagesOptions, *, seed: int) -> RawData:
    """A folder with one sub-folder of PNG/JPEG images per class."""
    root = resolve_path(opts.path, "data.path", folder=True)
    split = {p.name for p in _subfolders(root)} == {"train", "test"}
    train_root, test_root = (root / "train", root / "test") if split else (root, None)
    classes = [p.name for p in _subfolders(train_root)]
    if not classes:
        raise DataError(
            f"Invalid image folder {train_root} (`data.path`): expected one sub-folder of images per class, found none",
            field="data.path",
        )
    size = tuple(opts.size) if opts.size is not None else None
    x_train, y_train, size = _read_split(train_root, classes, opts, size)
    x_test = y_test = None
    if test_root is not None:
        test_classes = [p.name for p in _subfolders(test_root)]
        unknown = sorted(set(test_classes) - set(classes))
        if unknown:
            raise DataError(
                f"Invalid image folder {test_root}: classes {unknown} have no training images (training classes: {classes})",
                field="data.path",
            )
        x_test, y_test, _ = _read_split(test_root, classes, opts, size, required=False)
    return RawData(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, class_names=classes, kind="image")


def _subfolders(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def _read_split(
    root: Path, classes: list[str], opts: ImagesOptions, size: tuple[int, ...] | None, *, required: bool = True
) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    from PIL import Image

    from modelyard.image_decode import convert_image, open_image

    max_pixels = Image.MAX_IMAGE_PIXELS or 2**62  # Pillow's bomb limit (None: the user switched it off)
    arrays: list[np.ndarray] = []
    labels: list[int] = []
    total = 0  # bytes read so far, against the server's cap
    for index, name in enumerate(classes):
        folder = root / name
        files = (
            sorted(p for p in folder.glob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if folder.is_dir()
            else []
        )
        if not files and required:
            raise DataError(
                f"Invalid image folder {folder} (`data.path`): class {name!r} holds no PNG or JPEG images",
                field="data.path",
            )
        access = current_access()
        for file in files:
            if access is not None:  # a symlink in an allowed folder may lead anywhere
                real = access.check_file_in(file, "data.path")
                total += real.stat().st_size
                access.check_size(total, "data.path", str(root))
            image = convert_image(
                open_image(
                    file.read_bytes(), source=str(file), max_pixels=max_pixels, error=DataError, field="data.path"
                ),
                opts.mode,
            )
            hw = (image.height, image.width)
            if size is None:
                size = hw
            if hw != size:
                if not opts.resize:
                    raise DataError(
                        f"Invalid image {file}: expected {size[0]}x{size[1]} pixels (HxW, "
                        f"{'from `data.size`' if opts.size else 'the size of the first image'}), "
                        f"received {hw[0]}x{hw[1]}; set `data.resize: true` to resize images",
                        field="data.path",
                    )
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.float32)
            # HxW (grayscale) or HxWxC → channels-first CxHxW
            arrays.append(pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1))
            labels.append(index)
    if not arrays:
        raise DataError(f"Invalid image folder {root} (`data.path`): no PNG or JPEG images found", field="data.path")
    return np.stack(arrays), np.asarray(labels, dtype=np.int64), size  # type: ignore[return-value]
