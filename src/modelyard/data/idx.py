"""Reading IDX files (the MNIST family's format), gzipped or not, with numpy.

Format (http://yann.lecun.com/exdb/mnist/): a 4-byte magic number ``0 0 <type> <ndim>``,
then ``ndim`` big-endian uint32 dimension sizes, then the values in row-major order,
big-endian. ``np.frombuffer`` on the body keeps the 60k-image file well under a second.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from modelyard.data.access import current_access
from modelyard.errors import DataError

__all__ = ["read_idx", "parse_idx", "encode_idx"]

# type code → numpy dtype (big-endian where it matters)
_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path, *, ndim: int | None = None) -> np.ndarray:
    """Read one IDX file (``.gz`` decompressed on the fly); DataError names the file if it is bad."""
    path = Path(path)
    try:
        data = path.read_bytes()
        if path.suffix == ".gz" or data[:2] == b"\x1f\x8b":
            data = _gunzip(data, path)
    except FileNotFoundError:
        raise DataError(f"IDX file not found: {path}") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"Corrupt IDX file {path}: cannot decompress it ({exc}); delete it and fetch it again"
        ) from None
    return parse_idx(data, name=str(path), ndim=ndim)


def _gunzip(data: bytes, path: Path) -> bytes:
    """Decompress, stopping at the server's size cap (a small .gz can expand to gigabytes)."""
    access = current_access()
    if access is None:
        return gzip.decompress(data)
    out = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, access.max_bytes + 1)
    access.check_size(len(out), "data.path", f"{path} (decompressed)")
    return out


def parse_idx(data: bytes, *, name: str = "IDX data", ndim: int | None = None) -> np.ndarray:
    """Parse IDX bytes into an array, validating the magic number and the size."""
    if len(data) < 4:
        raise DataError(f"Corrupt IDX file {name}: expected at least a 4-byte header, received {len(data)} bytes")
    zero1, zero2, code, dims = data[0], data[1], data[2], data[3]
    if zero1 != 0 or zero2 != 0 or code not in _DTYPES:
        raise DataError(
            f"Corrupt IDX file {name}: bad magic number (expected 0x0000 then a type code 08, 09, 0B, 0C, 0D or 0E)"
        )
    if ndim is not None and dims != ndim:
        raise DataError(f"Invalid IDX file {name}: expected {ndim} dimension(s), received {dims}")
    header = 4 + 4 * dims
    if len(data) < header:
        raise DataError(f"Corrupt IDX file {name}: truncated header ({len(data)} bytes, expected {header})")
    shape = struct.unpack(f">{dims}I", data[4:header])
    dtype = _DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    received = len(data) - header
    if received != expected:
        what = "truncated" if received < expected else "has trailing bytes"
        raise DataError(
            f"Corrupt IDX file {name}: {what}; shape {list(shape)} needs {expected} bytes of data, received {received}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    # Native byte order so that later numpy/torch code never sees big-endian arrays.
    return arr.astype(dtype.newbyteorder("="), copy=False) if dtype.byteorder == ">" else arr


def encode_idx(arr: np.ndarray) -> bytes:
    """The IDX bytes of ``arr`` (the inverse of ``parse_idx``; used to build test files)."""
    arr = np.asarray(arr)
    for code, dtype in _DTYPES.items():
        if dtype.kind == arr.dtype.kind and dtype.itemsize == arr.dtype.itemsize:
            header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
            return header + np.ascontiguousarray(arr, dtype=dtype).tobytes()
    raise ValueError(f"IDX cannot hold arrays of dtype {arr.dtype}")
