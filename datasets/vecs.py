"""TEXMEX .fvecs / .ivecs / .bvecs files: each vector is an int32 dimension d
followed by d float32 / int32 / uint8 values."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _read(path, value_dtype, value_size: int, mmap: bool = False) -> np.ndarray:
    path = Path(path)
    raw = np.memmap(path, dtype=np.uint8, mode="r") if mmap and path.stat().st_size else \
        np.fromfile(path, dtype=np.uint8)
    if raw.size == 0:
        return np.zeros((0, 0), dtype=value_dtype)
    if raw.size < 4:
        raise ValueError(f"{path} is truncated: {raw.size} bytes")
    dim = int(raw[:4].view(np.int32)[0])
    if dim <= 0:
        raise ValueError(f"{path} starts with an invalid dimension {dim}")
    row_bytes = 4 + dim * value_size
    if raw.size % row_bytes:
        raise ValueError(f"{path} is truncated or not a {value_dtype.__name__} vecs file of dimension {dim}")
    rows = raw.reshape(-1, row_bytes)
    if mmap:  # a strided view of the file: nothing is read until it is sliced
        _check_dims(path, rows[[0, -1], :4].copy().view(np.int32).ravel(), dim)
        return rows[:, 4:].view(value_dtype)
    dims = rows[:, :4].copy().view(np.int32).ravel()
    if (dims != dim).any():
        raise ValueError(f"{path}: row {int(np.flatnonzero(dims != dim)[0])} has dimension "
                         f"{int(dims[dims != dim][0])}, expected {dim}")
    return rows[:, 4:].copy().view(value_dtype).reshape(-1, dim)


def _check_dims(path, dims: np.ndarray, dim: int) -> None:
    if (dims != dim).any():
        raise ValueError(f"{path}: a row has dimension {int(dims[dims != dim][0])}, expected {dim}")


def read_fvecs(path, mmap: bool = False) -> np.ndarray:
    """float32 [n, d]. mmap=True maps the file instead of reading it: a read-only view whose
    slices are read on demand (its first and last rows' dimensions are checked), for data
    larger than memory, e.g. upserted into an index chunk by chunk."""
    return _read(path, np.float32, 4, mmap)


def read_ivecs(path) -> np.ndarray:
    return _read(path, np.int32, 4)


def read_bvecs(path) -> np.ndarray:
    return _read(path, np.uint8, 1)


def _write(path, x: np.ndarray, dtype) -> None:
    x = np.ascontiguousarray(x, dtype=dtype)
    n, d = x.shape
    out = np.empty((n, 1 + d), dtype=np.int32)
    out[:, 0] = d
    out[:, 1:] = x.view(np.int32)
    out.tofile(path)


def write_fvecs(path, x) -> None:
    _write(path, x, np.float32)


def write_ivecs(path, x) -> None:
    _write(path, x, np.int32)
