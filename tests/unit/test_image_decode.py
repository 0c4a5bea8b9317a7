"""Every image reader (prediction/explain files, the images data source) refuses a bad image in one
line naming the file, what was expected and what was received, with no Python object in it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelyard.data import load_source
from modelyard.errors import DataError, InputError
from modelyard.inputs import read_inputs
from modelyard.spec import DataSpec
from tests.support.images import assert_no_repr, bad_images, png_bytes

CASES = bad_images(8, 8)


@pytest.mark.parametrize("case", sorted(CASES))
def test_prediction_file(tmp_path: Path, case: str) -> None:
    data, fragment = CASES[case]
    path = tmp_path / "in.png"
    path.write_bytes(data)
    with pytest.raises(InputError) as info:
        read_inputs(path, [1, 8, 8])
    message = str(info.value)
    assert str(path) in message and fragment in message, message
    assert_no_repr(message)


@pytest.mark.parametrize("case", sorted(CASES))
def test_images_data_source(tmp_path: Path, case: str) -> None:
    data, fragment = CASES[case]
    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        (tmp_path / "imgs" / cls / "0.png").write_bytes(png_bytes(np.zeros((8, 8), np.uint8)))
    bad = tmp_path / "imgs" / "b" / "1.png"
    bad.write_bytes(data)
    with pytest.raises(DataError) as info:
        load_source(DataSpec.model_validate({"source": "images", "path": str(tmp_path / "imgs")}).source, seed=0)
    message = str(info.value)
    assert str(bad) in message and info.value.field == "data.path", message
    assert (fragment if case != "wrong-size" else "expected 8x8 pixels") in message, message
    assert_no_repr(message)


def test_good_images_still_read_exactly(tmp_path: Path) -> None:
    """Opaque RGBA, palette and JPEG files are fine: only conversions that would change pixels are refused."""
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    rgba = np.dstack([gray, gray, gray, np.full((8, 8), 255, np.uint8)])
    (tmp_path / "gray.png").write_bytes(png_bytes(gray))
    (tmp_path / "rgba.png").write_bytes(png_bytes(rgba, "RGBA"))
    for name in ("gray.png", "rgba.png"):
        np.testing.assert_array_equal(read_inputs(tmp_path / name, [1, 8, 8])[0, 0], gray)
    (tmp_path / "photo.jpg").write_bytes(png_bytes(gray, fmt="JPEG"))
    assert read_inputs(tmp_path / "photo.jpg", [1, 8, 8]).shape == (1, 1, 8, 8)
