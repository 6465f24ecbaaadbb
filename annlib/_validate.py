"""Input checks at the API edge.

Every public entry point normalises its arrays here, once: float32, C-contiguous,
2-D, finite. The C++ core then takes exactly that buffer (no silent copies in
the hot path). Messages say what was wrong and how to fix the call.
"""
from __future__ import annotations

import numbers

import numpy as np

DISTANCE_MEASURES = ("dot_product", "squared_l2", "cosine")


def as_float_matrix(x, name: str, *, dim: int | None = None, allow_1d: bool = False) -> np.ndarray:
    """Returns x as a C-contiguous float32 array of shape (n, dim).

    With allow_1d, a 1-D vector is accepted and returned as shape (1, dim).
    """
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a numeric array, got {type(x).__name__}") from exc
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(
            f"{name} must hold real numbers (float or int), got dtype {arr.dtype}; "
            f"convert with np.asarray({name}, dtype=np.float32)"
        )
    if arr.ndim == 1 and allow_1d:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        want = "a 1-D vector or a 2-D (n, d) matrix" if allow_1d else "a 2-D (n, d) matrix"
        raise ValueError(f"{name} must be {want}, got an array with shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has zero dimensions (shape {arr.shape})")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} has dimension {arr.shape[1]} but the index was built with dimension {dim}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    # A NaN or infinity makes its row's squared norm non-finite, so one pass over
    # the norms checks both (no full-size temporary in the common case); squared
    # norms must be representable anyway, as scores are built from them.
    if arr.size and not np.isfinite(np.einsum("ij,ij->i", arr, arr)).all():
        finite_rows = np.isfinite(arr).all(axis=1)
        if not finite_rows.all():
            bad = int(np.flatnonzero(~finite_rows)[0])
            raise ValueError(f"{name} contains NaN or infinity (first in row {bad}); remove or impute those values")
        raise ValueError(f"{name} has values too large for float32 arithmetic (squared norm overflows); rescale the data")
    return arr


def check_database(x) -> np.ndarray:
    arr = as_float_matrix(x, "database")
    if arr.shape[0] == 0:
        raise ValueError("database is empty: pass at least one vector")
    if arr.shape[0] >= 2**31 - 64:
        raise ValueError("database has too many rows for one index (limit 2**31 - 64); shard it")
    return arr


def check_k(k, n: int, name: str = "num_neighbors") -> int:
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(k).__name__}")
    k = int(k)
    if k <= 0:
        raise ValueError(f"{name} must be >= 1, got {k}")
    if k > n:
        raise ValueError(f"{name}={k} exceeds the number of indexed points ({n}); ask for at most {n}")
    return k


def check_num_threads(num_threads) -> int:
    if isinstance(num_threads, (bool, np.bool_)) or not isinstance(num_threads, numbers.Integral):
        raise TypeError(f"num_threads must be an integer (0 = all cores), got {type(num_threads).__name__}")
    if num_threads < 0:
        raise ValueError(f"num_threads must be >= 0 (0 = all cores), got {num_threads}")
    return int(num_threads)


def check_distance_measure(distance_measure: str) -> str:
    if distance_measure not in DISTANCE_MEASURES:
        raise ValueError(f"distance_measure must be one of {', '.join(DISTANCE_MEASURES)}; got {distance_measure!r}")
    return distance_measure


def normalize_rows(x: np.ndarray, name: str) -> np.ndarray:
    """L2-normalises rows for cosine similarity; a zero row has no direction."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    if (norms == 0).any():
        bad = int(np.flatnonzero(norms == 0)[0])
        raise ValueError(f"{name} row {bad} is all zeros: cosine similarity is undefined for it")
    return np.ascontiguousarray(x / norms[:, None].astype(np.float32), dtype=np.float32)
