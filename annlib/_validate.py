"""Input checks at the API edge.

Every public entry point normalises its arrays here, once: float32, C-contiguous,
2-D. The C++ core then takes exactly that buffer (no silent copies in the hot
path). The values (NaN, infinity, overflowing norms, zero rows for cosine) are
checked by the engine (csrc/search/metric.h): queries on every search, other
rows here through the same code. Messages say what was wrong and how to fix the call.
"""
from __future__ import annotations

import numbers

import numpy as np

from . import _core

DISTANCE_MEASURES = ("dot_product", "squared_l2", "cosine")
# Names users type for the same measures (ann-benchmarks, FAISS, hnswlib, ScaNN), by the
# measure that ranks like them. One table for the builder, configs and annlib.datasets.
METRIC_ALIASES = {
    "dot_product": "dot_product", "dot": "dot_product", "ip": "dot_product", "inner_product": "dot_product",
    "squared_l2": "squared_l2", "l2": "squared_l2", "euclidean": "squared_l2",
    "cosine": "cosine", "angular": "cosine",
}


def as_float_matrix(x, name: str, *, dim: int | None = None, allow_1d: bool = False,
                    check_values: bool = True) -> np.ndarray:
    """Returns x as a C-contiguous float32 array of shape (n, dim), its values checked
    (finite, norms representable) unless the engine checks them (queries).

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
    if check_values and arr.size:
        _core.check_rows(arr, "dot_product", name)
    return arr


def check_database(x, allow_empty: bool = False) -> np.ndarray:
    arr = as_float_matrix(x, "database")
    if arr.shape[0] == 0 and not allow_empty:
        raise ValueError("database is empty: pass at least one vector")
    if arr.shape[0] >= 2**31 - 64:
        raise ValueError("database has too many rows for one index (limit 2**31 - 64); shard it")
    return arr


def check_k(k, n: int, name: str = "num_neighbors") -> int:
    if type(k) is int and 0 < k <= n:  # the common case, without the ABC check (a query's latency path)
        return k
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
    """The canonical name of a distance measure or one of its aliases (METRIC_ALIASES):
    "euclidean" and "l2" rank like squared L2, "angular" like cosine, "ip" like the dot product."""
    measure = METRIC_ALIASES.get(distance_measure) if isinstance(distance_measure, str) else None
    if measure is None:
        raise ValueError(f"distance_measure must be one of {', '.join(DISTANCE_MEASURES)} (or an alias: "
                         f"{', '.join(a for a in METRIC_ALIASES if a not in DISTANCE_MEASURES)}); "
                         f"got {distance_measure!r}")
    return measure


def normalize_rows(x: np.ndarray, name: str) -> np.ndarray:
    """L2-normalises rows for cosine similarity (as the engine normalises queries); a zero
    row has no direction."""
    return _core.normalized_rows(x, name)


def check_ids(ids, name: str = "ids") -> np.ndarray:
    """ids as a 1-D int64 array of unique non-negative integers."""
    arr = ids if isinstance(ids, np.ndarray) else np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of integers, got shape {arr.shape}")
    if arr.size and (arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be >= 0 (-1 marks padding in results), got {int(arr.min())}")
    unique, counts = np.unique(arr, return_counts=True)
    if len(unique) != len(arr):
        raise ValueError(f"{name} holds id {int(unique[counts > 1][0])} more than once; each id once per call")
    return arr


def not_held_error(missing: np.ndarray, asked: int) -> ValueError:
    """delete()'s error for ids the index does not hold (`missing`, of `asked` ids); the
    engine's own check (partitioned_store.cpp) says the same."""
    return ValueError(f"delete: the index holds no point with id {int(missing[0])} "
                      f"({missing.size} of the {asked} ids are not in the index); nothing was deleted")
