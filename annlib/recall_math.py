"""Recall arithmetic: measured recall@k of returned ids, and the bin-count
sizing of the TPU-KNN partial reduction (Chern et al., 2022).

A true neighbor is lost only when a better one falls into the same of L
uniformly used bins, which gives E[recall] = (L/k)(1 - (1 - 1/L)^k).
"""
from __future__ import annotations

import numpy as np

from . import _core


def id_recall(ids, true_ids, k: int) -> float:
    """Share of the true top-k ids among the first k returned (padding -1 never counts; no tie
    handling: see annlib.benchmarks.recall for the ann-benchmarks distance-threshold recall)."""
    ids, true_ids = _per_query(ids, true_ids)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    return found_share(ids, true_ids[:, :k], k)


def found_share(ids, truth, k: int) -> float:
    """Share of the true neighbours found: per query, the first k returned ids that are among
    its row of `truth` (every id there counts; -1 padding never does), over k. Rows may be
    ragged (lists of arrays); with truth [nq, k], recall@k."""
    hits = sum(len(np.intersect1d(a[:k][a[:k] >= 0], b[b >= 0])) for a, b in zip(ids, truth))
    return hits / (k * len(truth))


def recall_at_k(ids, true_ids, k: int | None = None) -> float:
    """Recall@k of search results: the share of each query's true k nearest ids (rows of
    true_ids; k defaults to the width of ids) among its first k returned ids."""
    ids, true_ids = _per_query(ids, true_ids)
    k = ids.shape[1] if k is None else k
    if true_ids.shape[1] < k:
        raise ValueError(f"true_ids holds {true_ids.shape[1]} neighbours per query, fewer than k={k}")
    return id_recall(ids, true_ids, k)


def _per_query(ids, true_ids) -> tuple[np.ndarray, np.ndarray]:
    """ids and true_ids as arrays of one row per query, the same queries: ids of 1,000
    queries scored against the truth of 2,000 would silently count half of the hits."""
    ids, true_ids = np.asarray(ids), np.asarray(true_ids)
    if ids.ndim != 2 or true_ids.ndim != 2 or len(ids) != len(true_ids):
        raise ValueError(f"ids {ids.shape} and true_ids {true_ids.shape} must be (num_queries, k) arrays with "
                         "one row per query each")
    return ids, true_ids


def expected_recall(num_bins: int, k: int) -> float:
    """Expected recall@k of keeping only the best of each of num_bins bins."""
    if num_bins <= 0 or k <= 0:
        raise ValueError("num_bins and k must be positive")
    L = float(num_bins)
    return min(1.0, (L / k) * (1.0 - (1.0 - 1.0 / L) ** k))


def num_bins_for(recall_target: float, k: int) -> int:
    """L = ceil((k-1) / -ln(recall_target)) (XLA's conservative sizing), at least k.

    Returns 0 (exact selection) for recall_target >= 1. (The brute-force engine's own rule,
    csrc/index/dense_index.h.)
    """
    if not 0.0 < recall_target <= 1.0:
        raise ValueError(f"recall_target must be in (0, 1], got {recall_target}")
    return _core.num_bins_for(float(recall_target), int(k))
