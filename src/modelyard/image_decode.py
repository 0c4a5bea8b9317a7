"""Opening PNG/JPEG images from untrusted bytes: the one place every image reader goes through.

Prediction and explanation inputs (files and HTTP uploads) and the ``images`` data source
all call ``open_image``. It picks Pillow's PNG or JPEG reader from the file's own signature
(never Pillow's format guessing, which would hand EPS files to Ghostscript), checks the pixel
count from the header before anything is decoded (decompression bombs), and refuses images
whose conversion to the model's 8-bit grayscale/RGB would silently change them: 16/32-bit
grayscale (Pillow clips it to 255) and transparent pixels (dropped with the alpha channel).
Every failure is one line naming the image, what was expected and what was received; no
Pillow message quoting a Python object (``<_io.BytesIO object at ...>``) gets through.
"""

from __future__ import annotations

import io
import struct
from typing import TYPE_CHECKING, Any

from modelyard.errors import ModelyardError

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["open_image", "convert_image", "PNG_SIGNATURE", "JPEG_SIGNATURE"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"  # start-of-image marker, then the first segment's marker
_OTHER_FORMATS = (
    (b"GIF8", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"RIFF", "a RIFF file (WebP?)"),
    (b"%!PS", "a PostScript file"),
    (b"%PDF", "a PDF file"),
)
_DEEP_MODES = {"I;16": "16-bit", "I;16B": "16-bit", "I;16L": "16-bit", "I;16N": "16-bit", "I": "32-bit", "F": "float"}
# Pillow's own failures while reading a header or decoding: SyntaxError for a wrong signature,
# struct.error/IndexError/EOFError for a cut header, OSError for truncated or corrupt data.
_PILLOW_FAILURES = (OSError, SyntaxError, EOFError, ValueError, IndexError, TypeError, struct.error)


def open_image(
    data: bytes, *, source: str, max_pixels: int, error: type[ModelyardError], field: str | None = None
) -> Image.Image:
    """Decode PNG/JPEG ``data`` into a loaded 8-bit Pillow image, or raise ``error`` (one line)."""
    from PIL import JpegImagePlugin, PngImagePlugin

    def fail(message: str) -> ModelyardError:
        return error(message, field=field)

    if not data:
        raise fail(f"Cannot decode image {source}: expected a PNG or JPEG file, received an empty file")
    if data.startswith(PNG_SIGNATURE):
        reader: Any = PngImagePlugin.PngImageFile
        kind = "PNG"
    elif data.startswith(JPEG_SIGNATURE):
        reader, kind = JpegImagePlugin.JpegImageFile, "JPEG"
    else:
        raise fail(
            f"Cannot decode image {source}: expected a PNG or JPEG file, received bytes starting {data[:8]!r} "
            f"({_describe(data)})"
        )
    try:
        # The plugin class reads only the header: the size is known before any pixel is decoded,
        # and Pillow's own bomb check (a warning, then an error at twice its limit) never fires.
        image = reader(io.BytesIO(data))
    except _PILLOW_FAILURES:
        raise fail(
            f"Cannot decode image {source}: expected a PNG or JPEG file, received a damaged {kind} file "
            "(its header is cut short or invalid)"
        ) from None
    width, height = image.size
    if width * height > max_pixels:
        raise fail(
            f"Image {source} is too large: {width}x{height} pixels, at most {max_pixels} (a decompression bomb?)"
        )
    if image.mode in _DEEP_MODES:
        raise fail(
            f"Invalid image {source}: expected an 8-bit grayscale or RGB image, received a {_DEEP_MODES[image.mode]} "
            f"grayscale image (mode {image.mode}); save it with 8 bits per channel"
        )
    try:
        image.load()
    except _PILLOW_FAILURES as exc:
        raise fail(
            f"Cannot decode image {source}: expected a complete {kind} file, received a truncated or damaged one "
            f"({_reason(exc)})"
        ) from None
    if _has_transparent_pixels(image):
        raise fail(
            f"Invalid image {source}: expected an image without transparency (grayscale or RGB), received "
            f"transparent pixels (mode {image.mode}); flatten it onto its background first"
        )
    return image


def convert_image(image: Image.Image, mode: str) -> Image.Image:
    """``image`` in ``mode`` ("L" or "RGB"); an opaque alpha channel, checked by ``open_image``, is dropped."""
    return image if image.mode == mode else image.convert(mode)


def _has_transparent_pixels(image: Image.Image) -> bool:
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        return image.getchannel("A").getextrema()[0] < 255
    if "transparency" in image.info:  # a palette or single-colour transparency key
        return _has_transparent_pixels(image.convert("RGBA"))
    return False


def _describe(data: bytes) -> str:
    for signature, name in _OTHER_FORMATS:
        if data.startswith(signature):
            return name
    head = data[:512]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "not an image format modelyard reads"
    return (
        "a text file" if all(c.isprintable() or c in "\r\n\t" for c in text) else "not an image format modelyard reads"
    )


def _reason(exc: BaseException) -> str:
    """Pillow's words for a decoding failure, unless they quote a Python object."""
    text = str(exc)
    return text if text and "<" not in text and len(text) < 120 else type(exc).__name__
