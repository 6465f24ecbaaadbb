"""Exact ground truth with annlib's own float32 brute force."""
from __future__ import annotations

import numpy as np

from ..builder import builder
from .._validate import check_distance_measure


def ground_truth(train, test, k: int, metric: str, num_threads: int = 0):
    """Exact k nearest neighbors of each test row among train rows.

    metric: an annlib distance_measure ("dot_product", "squared_l2", "cosine")
    or an alias ("angular", "euclidean", "l2", "ip", "dot").
    Returns (neighbors int64 [nq, k], distances float32 [nq, k]) where distances
    follow ann-benchmarks: squared L2 -> Euclidean distance, cosine -> 1 - cos,
    dot product -> negated dot product (smaller is nearer everywhere).
    """
    measure = check_distance_measure(metric)
    searcher = builder(train, k, measure).score_brute_force(recall_target=1.0, dtype="float32").build(num_threads)
    ids, scores = searcher.search_batched(test, k, num_threads=num_threads)
    if measure == "squared_l2":
        dist = np.sqrt(scores)
    elif measure == "cosine":
        dist = 1.0 - scores
    else:
        dist = -scores
    return ids, dist.astype(np.float32)
