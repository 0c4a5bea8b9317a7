"""Heatmap PNGs: attributions drawn over the input image, pixel for pixel in raw image space.

The image shows through in grey; each pixel is tinted red where it raised the explained
output and blue where it lowered it (saliency, which is unsigned, is red only). Opacity
grows with |attribution|, relative to the image's 99th percentile so that a few extreme
pixels do not wash out the rest (Captum's visualizer clips outliers the same way).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from modelyard.errors import SpecError

__all__ = ["image_geometry", "overlay_png"]

_CLIP_PERCENTILE = 99.0
_MAX_OPACITY = 0.85
_COLORMAP = "bwr"  # diverging: blue (negative) - white - red (positive), vivid at both ends


def image_geometry(raw_shape: Sequence[int]) -> tuple[int, int, int] | None:
    """``(channels, height, width)`` of a raw input shape, or None if it is not an image.

    Mirrors ``modelyard.inputs.image_to_array``: ``[C, H, W]`` or ``[H, W]``, or a flat
    row of a square grey (``H*H``) or RGB (``3*H*H``, channels first) image.
    """
    shape = [int(s) for s in raw_shape]
    if len(shape) == 3 and shape[0] in (1, 3):
        return shape[0], shape[1], shape[2]
    if len(shape) == 2:
        return 1, shape[0], shape[1]
    if len(shape) == 1:
        side = round(shape[0] ** 0.5)
        if side * side == shape[0] and side > 1:
            return 1, side, side
        side = round((shape[0] / 3) ** 0.5)
        if 3 * side * side == shape[0] and side > 1:
            return 3, side, side
    return None


def overlay_png(
    image: np.ndarray, attributions: np.ndarray, geometry: tuple[int, int, int], *, scale: int = 1
) -> bytes:
    """PNG bytes of ``attributions`` over ``image`` (both one raw sample), ``scale``-times enlarged."""
    from matplotlib import colormaps
    from PIL import Image

    if not isinstance(scale, int) or isinstance(scale, bool) or not 1 <= scale <= 64:
        raise SpecError(f"Invalid value for `scale`: expected an integer 1..64, received {scale!r}", field="scale")
    channels, height, width = geometry
    pixels = np.asarray(image, dtype=np.float64).reshape(channels, height, width)
    low, high = pixels.min(), pixels.max()
    base = (pixels - low) / (high - low) if high > low else np.zeros_like(pixels)
    base_rgb = np.repeat(base[0][..., None], 3, axis=2) if channels == 1 else base.transpose(1, 2, 0)

    attr = np.asarray(attributions, dtype=np.float64).reshape(channels, height, width).sum(axis=0)  # (H, W)
    limit = float(np.percentile(np.abs(attr), _CLIP_PERCENTILE))
    if limit <= 0:
        limit = float(np.abs(attr).max())
    strength = np.clip(attr / limit, -1.0, 1.0) if limit > 0 else np.zeros_like(attr)
    colors = colormaps[_COLORMAP]((strength + 1.0) / 2.0)[..., :3]
    alpha = _MAX_OPACITY * np.abs(strength)[..., None]
    rgb = base_rgb * (1.0 - alpha) + colors * alpha

    picture = Image.fromarray(np.round(rgb * 255).astype(np.uint8))  # (H, W, 3) uint8: RGB
    if scale > 1:
        picture = picture.resize((width * scale, height * scale), Image.Resampling.NEAREST)
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()
