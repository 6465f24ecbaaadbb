"""Recall@k as ann-benchmarks computes it.

ann-benchmarks does not compare ids: it recomputes the distance from the
query to every returned point in the dataset's own metric ("angular" is
1 - cosine, "euclidean" is plain L2, and "dot", for inner-product data that
is not normalised, -<q, x> as annlib.datasets.ground_truth writes it) and counts a returned point as a hit
when that distance is at most the true k-th distance + 1e-3. Points tied
with the k-th neighbour therefore count, whichever of them a system returns.
"""
from __future__ import annotations

import numpy as np

from ..recall_math import id_recall  # noqa: F401  (reported beside knn_recall)

EPSILON = 1e-3  # ann-benchmarks' default for the "k-nn" metric


def metric_distances(metric: str, queries: np.ndarray, train: np.ndarray, ids: np.ndarray,
                     chunk: int = 256) -> np.ndarray:
    """Distance from each query to each returned point, in float64; padding (-1) is +inf."""
    ids = np.asarray(ids)
    if metric not in ("angular", "euclidean", "dot"):
        raise ValueError(f"recall for metric {metric!r} is not defined (angular, euclidean or dot)")
    out = np.empty(ids.shape, dtype=np.float64)
    for start in range(0, len(ids), chunk):  # chunks bound the [queries, k, d] float64 temporary
        part = ids[start:start + chunk]
        rows = train[np.where(part >= 0, part, 0)].astype(np.float64)            # [c, k, d]
        q = np.asarray(queries[start:start + chunk], dtype=np.float64)[:, None, :]
        if metric == "dot":
            dist = -(rows * q).sum(axis=2)
        elif metric == "angular":
            dots = (rows * q).sum(axis=2)
            norms = np.linalg.norm(rows, axis=2) * np.linalg.norm(q, axis=2)
            dist = 1.0 - dots / np.maximum(norms, 1e-30)
        else:
            dist = np.sqrt(((rows - q) ** 2).sum(axis=2))
        out[start:start + chunk] = np.where(part >= 0, dist, np.inf)
    return out


def knn_recall(true_distances: np.ndarray, run_distances: np.ndarray, k: int, epsilon: float = EPSILON) -> float:
    """Mean over queries of |{returned within the k-th true distance + epsilon}| / k."""
    true_distances = np.asarray(true_distances)
    if true_distances.shape[1] < k:
        raise ValueError(f"ground truth holds {true_distances.shape[1]} neighbours per query, fewer than k={k}")
    thresholds = true_distances[:, k - 1].astype(np.float64) + epsilon
    hits = (np.asarray(run_distances)[:, :k] <= thresholds[:, None]).sum(axis=1)
    return float(hits.mean() / k)
