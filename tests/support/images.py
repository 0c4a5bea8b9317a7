"""Bad images for every image reader (prediction files, HTTP uploads, the images data source).

``bad_images(h, w)`` gives, for a model or folder of ``h x w`` grayscale images, each kind of
image that must be refused with one line: ``{case: (bytes, fragment of the message)}``.
``assert_no_repr`` checks that a message quotes no Python object.
"""

from __future__ import annotations

import io
import re
import struct
import zlib

import numpy as np

__all__ = ["bad_images", "assert_no_repr", "png_bytes"]

_REPR = re.compile(r"<[\w.]+ object at|<PIL|<class |\barray\(|\btensor\(|dtype\('|Traceback")


def png_bytes(pixels: np.ndarray, mode: str | None = None, fmt: str = "PNG") -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels, mode=mode).save(out, format=fmt)
    return out.getvalue()


def _bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` 1-bit pixels: a few bytes that would decode to gigabytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )


def bad_images(height: int, width: int) -> dict[str, tuple[bytes, str]]:
    rng = np.random.default_rng(0)
    good = png_bytes(rng.integers(0, 256, (height, width), dtype=np.uint8))
    transparent = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    transparent[..., 3] = 0
    deep = (rng.integers(0, 65536, (height, width))).astype(np.uint16)
    return {
        "truncated-png": (good[: len(good) // 2], "expected a complete PNG file, received a truncated or damaged one"),
        "png-header-cut": (good[:20], "received a damaged PNG file"),
        "text-named-png": (b"just some text, not an image\n", "received bytes starting b'just som' (a text file)"),
        "wrong-size": (png_bytes(np.zeros((height + 1, width), np.uint8)), f"expected {width}x{height} pixels"),
        "16-bit-grayscale": (png_bytes(deep), "expected an 8-bit grayscale or RGB image, received a 16-bit"),
        "transparent": (png_bytes(transparent, "RGBA"), "received transparent pixels (mode RGBA)"),
        "decompression-bomb": (_bomb_png(100_000, 100_000), "too large: 100000x100000 pixels"),
    }


def assert_no_repr(message: str) -> None:
    assert not _REPR.search(message), message
    assert "\n" not in message.strip(), message
