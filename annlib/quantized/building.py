"""Building a quantized index's arrays: train on samples, place every point, lay out.

  1. k-means centers on a sample (training.kmeans): plain, spherical (scaled to
     the data's mean norm), or on the norm-lifted points (augment_norms: the
     centers' lift is saved beside them for placing later points); without a
     tree, one leaf centered at the origin;
  2. AH codebooks on a sample of primary residuals (training.train_codebooks);
  3. every point placed (placement.place_points: its leaf, its SOAR leaf,
     the AH codes and L2 term of each copy, its reorder row);
  4. the arrays laid out leaf after leaf (layout.lay_out).

train() stops after step 2 with an empty index (trained_arrays), for upsert() to fill.
"""
from __future__ import annotations

import numpy as np

from .._validate import normalize_rows
from ..config import IndexConfig
from ..defaults import norm_stats
from .layout import lay_out, leaf_balance
from .placement import place_points
from .reorder_copy import rows_dtype_for
from .soar_choice import with_soar_decided
from .training import NormLift, assign, kmeans, train_codebooks, training_sample


def _leaves(config: IndexConfig, x: np.ndarray, num_threads: int, progress: bool | None):
    """(centroids, primary leaf of each row of x, NormLift or None): step 1."""
    n, d = x.shape
    tree = config.tree
    if tree is None:
        return np.zeros((1, d), np.float32), np.zeros(n, np.int64), None
    if tree.augment_norms:
        lift = NormLift.fit(x)
        # Only the training sample is lifted (a copy of d + 1 columns), not all of x.
        sample = training_sample(x, tree.training_sample_size, tree.num_leaves, np.random.default_rng(tree.seed))
        lifted = kmeans(lift.rows(sample), tree.num_leaves, iterations=tree.iterations,
                        training_sample_size=len(sample), init=tree.init, seed=tree.seed, num_threads=num_threads,
                        progress=progress)
        centroids = np.ascontiguousarray(lifted[:, :d])
        lift.centroid_lift = np.ascontiguousarray(lifted[:, d])
        return centroids, lift.assign(x, centroids, num_threads), lift
    centroids = kmeans(x, tree.num_leaves, iterations=tree.iterations, training_sample_size=tree.training_sample_size,
                       init=tree.init, spherical=tree.spherical, seed=tree.seed, num_threads=num_threads,
                       progress=progress)
    if tree.spherical:
        # Unit directions, placed on the sphere the data lies on (its mean norm; 1 for unit
        # data): the leaves and the probe order stay spherical k-means', and the residuals
        # that AH and SOAR work on stay as small as the data's spread.
        centroids *= np.float32(norm_stats(x, sample=100_000)[0])
    return centroids, assign(x, centroids, num_threads=num_threads)[0], None


def _train(config: IndexConfig, x: np.ndarray, num_threads: int, progress: bool | None):
    """(centroids, codebooks, primary leaf of each row of x, NormLift or None) learned from x
    (steps 1-2)."""
    centroids, labels, lift = _leaves(config, x, num_threads, progress)
    tree, ahc = config.tree, config.score_ah
    seed = tree.seed if tree is not None else 0
    rng = np.random.default_rng(seed)
    n = len(x)
    sample = np.sort(rng.choice(n, min(n, ahc.training_sample_size), replace=False))
    codebooks = train_codebooks(x[sample] - centroids[labels[sample]], ahc.dimensions_per_block,
                                iterations=ahc.training_iterations, training_sample_size=len(sample), seed=seed,
                                num_threads=num_threads, progress=progress)
    return centroids, codebooks, labels, lift


def _with_lift(arrays: dict, lift: NormLift | None) -> dict:
    """The lift's arrays beside the engine's (the engine does not read them; placement does)."""
    if lift is not None:
        arrays["centroid_lift"] = lift.centroid_lift.astype(np.float32)
        arrays["norm_bound"] = np.array([lift.bound], np.float64)
    return arrays


def _prepared(config: IndexConfig, database: np.ndarray) -> np.ndarray:
    return normalize_rows(database, "database") if config.distance_measure == "cosine" else database


def build_arrays(config: IndexConfig, database: np.ndarray, num_threads: int = 0, progress: bool | None = None,
                 ids: np.ndarray | None = None) -> tuple[IndexConfig, dict]:
    """(config, arrays) of a quantized index over database (float32 [n, d], checked), the
    arrays in the current format (csrc/index/index_format.h); the config as given, with
    soar_lambda="auto" decided (soar_choice.py)."""
    x = _prepared(config, database)
    centroids, codebooks, labels, lift = _train(config, x, num_threads, progress)
    config = with_soar_decided(config, x, centroids, labels, lift, num_threads)
    # A float32 reorder copy of data bfloat16 holds exactly is kept in bfloat16 (reorder_copy.py).
    placement = place_points(config, centroids, codebooks, x, num_threads, progress, leaves=labels, lift=lift,
                             rows_dtype=rows_dtype_for(config, x))
    return config, _with_lift(lay_out(placement, centroids, codebooks, config.score_ah.dimensions_per_block,
                                      config.distance_measure == "squared_l2", num_threads, ids), lift)


def trained_arrays(config: IndexConfig, sample: np.ndarray, num_threads: int = 0,
                   progress: bool | None = None) -> tuple[IndexConfig, dict]:
    """(config, arrays) of an empty quantized index whose leaves and codebooks were learned
    from sample (float32 [n, d], checked): upsert() places points into it as a build would.
    soar_lambda="auto" is decided on the sample."""
    x = _prepared(config, sample)
    centroids, codebooks, labels, lift = _train(config, x, num_threads, progress)
    config = with_soar_decided(config, x, centroids, labels, lift, num_threads)
    # An empty copy in the dtype a build of data like the sample would hold (reorder_copy.py).
    placement = place_points(config, centroids, codebooks, x[:0], num_threads, progress,
                             leaves=np.zeros(0, np.int64), rows_dtype=rows_dtype_for(config, x))
    arrays = _with_lift(lay_out(placement, centroids, codebooks, config.score_ah.dimensions_per_block,
                                config.distance_measure == "squared_l2", num_threads), lift)
    # health() measures the leaves' spread against the sample's.
    sample_cv = leaf_balance(np.bincount(labels, minlength=len(centroids)))["leaf_size_cv"]
    arrays["leaf_cv_at_training"] = np.array([sample_cv])
    return config, arrays
