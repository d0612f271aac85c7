"""Reader for the idx format of MNIST and Fashion-MNIST (optionally gzip-compressed)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from bal_tf.errors import InputError

# Third byte of the magic number: the element type (only the types MNIST-style files use).
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads an idx file (``*-idx3-ubyte``, ``*-idx1-ubyte``, or their ``.gz``) into an array.

    The header is two zero bytes, a type byte, a dimension count n, then n big-endian uint32
    sizes; the data follows. For MNIST images that is 16 bytes, for labels 8.

    Raises:
        InputError: the file is not idx, or its size does not match its header.
    """
    path = Path(path)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise InputError(
            f"{path} is not an idx file: expected magic bytes 00 00 <type> <ndim>. "
            f"Received: {raw[:4].hex(' ') or 'an empty file'}"
        )
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise InputError(
            f"{path}: the idx header announces shape {shape} ({expected} bytes in all), "
            f"but the file has {len(raw)} bytes (truncated or corrupt)."
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))
