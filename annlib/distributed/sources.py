"""The input of a sharded build, in chunks: an array or anything sliceable with a
shape (a NumPy memory map, an h5py dataset), a file (.npy, .fvecs, or the "train"
set of an ann-benchmarks .hdf5), or an iterator of arrays or (ids, arrays) pairs.
Only one chunk at a time is read into the driver's memory."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from .._validate import check_ids


def open_source(data):
    """An array-like view of a file path (memory-mapped where the format allows), or data itself."""
    if not isinstance(data, (str, Path)):
        return data
    path = Path(data)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, mmap_mode="r")
    if suffix == ".fvecs":
        from ..datasets import read_fvecs

        return read_fvecs(path, mmap=True)
    if suffix in (".hdf5", ".h5"):
        from ..datasets.hdf5 import _h5py

        return _h5py().File(path, "r")["train"]
    raise ValueError(f"{path}: a sharded build reads .npy, .fvecs or .hdf5 (ann-benchmarks) files")


def chunks(data, ids, chunk_size: int) -> tuple[Iterator[tuple[np.ndarray, np.ndarray]], int | None]:
    """(iterator of (ids int64, rows) chunks, total rows or None when unknown). Default ids
    number the rows 0, 1, ... in input order."""
    data = open_source(data)
    if hasattr(data, "shape") and hasattr(data, "__getitem__"):
        n = int(data.shape[0])
        if len(data.shape) != 2:
            raise ValueError(f"data must be 2-D (n, d), got shape {tuple(data.shape)}")
        if ids is not None:
            ids = check_ids(ids)
            if len(ids) != n:
                raise ValueError(f"ids has {len(ids)} entries but the data has {n} rows")

        def sliced():
            for start in range(0, n, chunk_size):
                stop = min(n, start + chunk_size)
                chunk_ids = ids[start:stop] if ids is not None else np.arange(start, stop, dtype=np.int64)
                yield chunk_ids, np.asarray(data[start:stop])

        return sliced(), n
    if not isinstance(data, Iterable):
        raise TypeError(f"data must be an array, a file path or an iterator of arrays, got {type(data).__name__}")
    if ids is not None:
        raise ValueError("with an iterator of chunks, give each chunk's ids in it: (ids, rows) pairs")

    def iterated():
        next_id = 0
        for item in data:
            if isinstance(item, tuple):
                if len(item) != 2:
                    raise ValueError("each chunk must be rows or an (ids, rows) pair")
                chunk_ids, rows = check_ids(item[0]), np.asarray(item[1])
            else:
                rows = np.asarray(item)
                chunk_ids = np.arange(next_id, next_id + len(rows), dtype=np.int64)
            next_id = max(next_id, int(chunk_ids.max()) + 1) if len(chunk_ids) else next_id
            for start in range(0, len(rows), chunk_size):
                yield chunk_ids[start:start + chunk_size], rows[start:start + chunk_size]

    return iterated(), None
