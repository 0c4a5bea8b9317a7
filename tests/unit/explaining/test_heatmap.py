"""Heatmap PNGs (geometry, size, colors) and the Explanation's JSON form."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modelyard.errors import SpecError
from modelyard.explaining import explain
from modelyard.explaining.heatmap import image_geometry, overlay_png
from tests.support.explaining import register
from tests.support.serving import register as register_served


def decode(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return np.asarray(image.convert("RGB")).astype(int)


@pytest.mark.parametrize(
    ("shape", "want"),
    [
        ([784], (1, 28, 28)),
        ([1, 28, 28], (1, 28, 28)),
        ([3, 32, 32], (3, 32, 32)),
        ([3 * 16 * 16], (3, 16, 16)),
        ([28, 28], (1, 28, 28)),
        ([4], (1, 2, 2)),
        ([10], None),
        ([2, 8, 8], None),
        ([1], None),
    ],
)
def test_image_geometry(shape: list[int], want: tuple | None) -> None:
    assert image_geometry(shape) == want


def test_overlay_has_the_image_size_and_colors_by_sign() -> None:
    image = np.full((1, 6, 5), 100.0)
    image[0, 0, 0] = 0.0  # so the grey base is not constant
    attr = np.zeros((1, 6, 5))
    attr[0, 2, 1], attr[0, 4, 3] = 1.0, -1.0
    pixels = decode(overlay_png(image, attr, (1, 6, 5)))
    assert pixels.shape == (6, 5, 3)  # height x width of the raw image
    red, blue, untouched = pixels[2, 1], pixels[4, 3], pixels[1, 1]
    assert red[0] > max(red[1], red[2]) + 150 and blue[2] > max(blue[0], blue[1]) + 150
    assert untouched[0] == untouched[1] == untouched[2] == 255  # zero attribution: the grey image itself
    assert tuple(pixels[0, 0]) == (0, 0, 0)
    big = decode(overlay_png(image, attr, (1, 6, 5), scale=4))
    assert big.shape == (24, 20, 3)
    np.testing.assert_array_equal(big[::4, ::4], pixels)  # nearest-neighbour enlargement


def test_overlay_of_rgb_images_and_bad_scale() -> None:
    image = np.random.default_rng(0).uniform(0, 255, size=(3, 4, 4))
    assert decode(overlay_png(image.reshape(-1), np.zeros(48), (3, 4, 4))).shape == (4, 4, 3)
    with pytest.raises(SpecError, match="`scale`: expected an integer 1..64, received 0"):
        overlay_png(image, np.zeros(48), (3, 4, 4), scale=0)


def test_explanation_heatmaps_for_image_models(home: Path, tmp_path: Path) -> None:
    ref = register_served("img", home)  # 1x8x8 images scaled by 255
    x = np.random.default_rng(0).integers(0, 256, size=(2, 1, 8, 8)).astype(np.float32)
    e = explain(ref, x)
    assert e.image == (1, 8, 8) and e.attributions.shape == (2, 1, 8, 8)
    written = e.save_heatmap(tmp_path / "why.png", index=1, scale=3)
    assert decode(written.read_bytes()).shape == (24, 24, 3)
    body = e.to_dict()
    json.dumps(body, allow_nan=False)
    item = body["explanations"][0]
    assert decode(base64.b64decode(item["heatmap_png"])).shape == (8, 8, 3)
    assert "top_features" not in item and np.asarray(item["attributions"]).shape == (1, 8, 8)
    assert item["attribution_sum"] == pytest.approx(item["output"] - item["baseline_output"], abs=1e-4)
    with pytest.raises(SpecError, match="`index`: expected an instance index 0..1, received 2"):
        e.heatmap_png(2)


def test_explanation_of_tabular_models_lists_top_features(home: Path) -> None:
    ref = register("lin", home)
    x = np.array([[1.0, 2.0, -1.0, 0.5]], dtype=np.float32)
    e = explain(ref, x, top=2)
    body = e.to_dict()
    json.dumps(body, allow_nan=False)
    assert body["model"] == ref and body["method"] == "integrated_gradients" and body["task"] == "regression"
    item = body["explanations"][0]
    contributions = dict(zip(["x1", "x2", "x3", "x4"], item["attributions"]))
    ranked = sorted(contributions, key=lambda k: -abs(contributions[k]))
    assert [f["feature"] for f in item["top_features"]] == ranked[:2]
    assert item["top_features"][0]["value"] == 2.0  # x2's raw value, not its standardized one
    assert {"target", "label", "output", "baseline_output", "convergence_delta"} <= set(item)
    assert len(e.top_features(0, k=4)) == 4
    with pytest.raises(SpecError, match="does not take images"):
        e.heatmap_png()
