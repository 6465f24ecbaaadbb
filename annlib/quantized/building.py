"""Building a quantized index's arrays: train on samples, place every point, lay out.

  1. k-means centers on a sample (training.kmeans); without a tree, one leaf
     centered at the origin;
  2. AH codebooks on a sample of primary residuals (training.train_codebooks);
  3. every point placed (placement.place_points: its leaf, its SOAR leaf,
     the AH codes and L2 term of each copy, its reorder row);
  4. the arrays laid out leaf after leaf (layout.lay_out).
"""
from __future__ import annotations

import numpy as np

from .._validate import normalize_rows
from ..config import IndexConfig
from .layout import lay_out
from .placement import place_points
from .training import assign, kmeans, train_codebooks


def build_arrays(config: IndexConfig, database: np.ndarray, num_threads: int = 0, progress: bool = True,
                 ids: np.ndarray | None = None) -> dict:
    """The arrays of a quantized index over database (float32 [n, d], checked) in the
    current format (csrc/index/index_format.h)."""
    x = normalize_rows(database, "database") if config.distance_measure == "cosine" else database
    n, d = x.shape
    tree, ahc = config.tree, config.score_ah
    if tree is not None:
        centroids = kmeans(x, tree.num_leaves, iterations=tree.iterations,
                           training_sample_size=tree.training_sample_size, init=tree.init,
                           spherical=tree.spherical, seed=tree.seed, num_threads=num_threads, progress=progress)
        labels, _ = assign(x, centroids, num_threads=num_threads)
    else:
        centroids = np.zeros((1, d), np.float32)
        labels = np.zeros(n, np.int64)
    seed = tree.seed if tree is not None else 0
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, min(n, ahc.training_sample_size), replace=False))
    codebooks = train_codebooks(x[sample] - centroids[labels[sample]], ahc.dimensions_per_block,
                                iterations=ahc.training_iterations, training_sample_size=len(sample), seed=seed,
                                num_threads=num_threads, progress=progress)
    placement = place_points(config, centroids, codebooks, x, num_threads, progress, leaves=labels)
    return lay_out(placement, centroids, codebooks, ahc.dimensions_per_block, config.distance_measure == "squared_l2",
                   num_threads, ids)
