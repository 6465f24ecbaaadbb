"""Building a quantized index's arrays: train on samples, place every point, lay out.

  1. k-means centers on a sample (training.kmeans): plain, spherical (scaled to
     the data's mean norm), or on the norm-lifted points (augment_norms: the
     centers' lift is saved beside them for placing later points); without a
     tree, one leaf centered at the origin;
  2. AH codebooks on a sample of primary residuals (training.train_codebooks);
  3. every point placed (placement.place_points: its leaf, its SOAR leaf,
     the AH codes and L2 term of each copy, its reorder row); step 2 needs the leaves
     of its sample only, so with SOAR the others come from the spill assignment's
     own pass over the centers (assignment.py) rather than a search of their own;
  4. the arrays laid out leaf after leaf (layout.lay_out).

train() stops after step 2 with an empty index (trained_arrays), for upsert() to fill.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validate import normalize_rows
from ..config import IndexConfig
from ..defaults import norm_stats
from .assignment import primary_leaves
from .layout import lay_out, leaf_balance
from .placement import place_points
from .reorder_copy import rows_dtype_for
from .soar_choice import with_soar_decided
from .training import NormLift, kmeans, train_codebooks, training_sample


def _centers(config: IndexConfig, x: np.ndarray, num_threads: int, progress: bool | None):
    """(centroids, NormLift or None): step 1."""
    n, d = x.shape
    tree = config.tree
    if tree is None:
        return np.zeros((1, d), np.float32), None
    if tree.augment_norms:
        lift = NormLift.fit(x)
        # Only the training sample is lifted (a copy of d + 1 columns), not all of x.
        sample = training_sample(x, tree.training_sample_size, tree.num_leaves, np.random.default_rng(tree.seed))
        lifted = kmeans(lift.rows(sample), tree.num_leaves, iterations=tree.iterations,
                        training_sample_size=len(sample), init=tree.init, seed=tree.seed, num_threads=num_threads,
                        progress=progress)
        lift.centroid_lift = np.ascontiguousarray(lifted[:, d])
        return np.ascontiguousarray(lifted[:, :d]), lift
    centroids = kmeans(x, tree.num_leaves, iterations=tree.iterations, training_sample_size=tree.training_sample_size,
                       init=tree.init, spherical=tree.spherical, seed=tree.seed, num_threads=num_threads,
                       progress=progress)
    if tree.spherical:
        # Unit directions, placed on the sphere the data lies on (its mean norm; 1 for unit
        # data): the leaves and the probe order stay spherical k-means', and the residuals
        # that AH and SOAR work on stay as small as the data's spread.
        centroids *= np.float32(norm_stats(x, sample=100_000)[0])
    return centroids, None


@dataclass
class Trained:
    """Steps 1-2 on x: the centers, the codebooks, and the primary leaves of every row or,
    when a SOAR build will find those in its spill assignment's own pass, of a sample of
    rows (the codebooks' sample)."""
    centroids: np.ndarray
    codebooks: np.ndarray
    lift: NormLift | None
    leaves: np.ndarray | None  # int64 [n]: every row's primary leaf, or None
    sample: np.ndarray         # int64 rows of x, ascending (all of them for a small x)
    labels: np.ndarray         # int64: their primary leaves

    def leaf_sizes(self, n: int) -> np.ndarray:
        """Points per leaf (float64 [L]): counted where every row's leaf is known, else
        estimated from the sample's (scaled to n rows)."""
        if self.leaves is not None:
            return np.bincount(self.leaves, minlength=len(self.centroids)).astype(np.float64)
        return np.bincount(self.labels, minlength=len(self.centroids)) * (n / max(len(self.sample), 1))


RESIDUAL_CHUNK = 1 << 14  # rows whose centers are gathered at a time


def _minus_centers(rows: np.ndarray, centroids: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """rows - centroids[labels], written over rows (a copy the caller owns) a chunk at a time:
    no gathered copy of the centers, nor a result, as large as the sample (on words, 150 MB
    each, whose first touch cost more than the subtraction)."""
    for i in range(0, len(rows), RESIDUAL_CHUNK):
        rows[i:i + RESIDUAL_CHUNK] -= centroids[labels[i:i + RESIDUAL_CHUNK]]
    return rows


def _train(config: IndexConfig, x: np.ndarray, num_threads: int, progress: bool | None,
           every_leaf: bool = False) -> Trained:
    """Steps 1-2: centers, then AH codebooks on the residuals of a sample of rows to their
    primary leaves; every_leaf: every row's leaf wanted, SOAR or not."""
    centroids, lift = _centers(config, x, num_threads, progress)
    tree, ahc = config.tree, config.score_ah
    seed = tree.seed if tree is not None else 0
    rng = np.random.default_rng(seed)
    n = len(x)
    sample = np.sort(rng.choice(n, min(n, ahc.training_sample_size), replace=False))
    rows = x[sample]
    # Without SOAR every row's leaf is searched for now (placing needs them all); with it
    # ("auto" included), only the sample's, unless the sample is every row.
    leaves = None
    if tree is None:
        leaves = np.zeros(n, np.int64)
    elif tree.soar_lambda is None or len(sample) == n or every_leaf:
        leaves = primary_leaves(x, centroids, lift, num_threads)
    labels = leaves[sample] if leaves is not None else primary_leaves(rows, centroids, lift, num_threads)
    codebooks = train_codebooks(_minus_centers(rows, centroids, labels), ahc.dimensions_per_block,
                                iterations=ahc.training_iterations, training_sample_size=len(sample), seed=seed,
                                num_threads=num_threads, progress=progress)
    return Trained(centroids, codebooks, lift, leaves, sample, labels)


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
    n = len(x)
    trained = _train(config, x, num_threads, progress)
    config = with_soar_decided(config, x, trained.centroids, trained.leaf_sizes(n), trained.lift, num_threads)
    # A float32 reorder copy of data bfloat16 holds exactly is kept in bfloat16 (reorder_copy.py).
    placement = place_points(config, trained.centroids, trained.codebooks, x, num_threads, progress,
                             leaves=trained.leaves, lift=trained.lift, rows_dtype=rows_dtype_for(config, x))
    return config, _with_lift(lay_out(placement, trained.centroids, trained.codebooks,
                                      config.score_ah.dimensions_per_block, config.distance_measure == "squared_l2",
                                      num_threads, ids), trained.lift)


def trained_arrays(config: IndexConfig, sample: np.ndarray, num_threads: int = 0,
                   progress: bool | None = None) -> tuple[IndexConfig, dict]:
    """(config, arrays) of an empty quantized index whose leaves and codebooks were learned
    from sample (float32 [n, d], checked): upsert() places points into it as a build would.
    soar_lambda="auto" is decided on the sample."""
    x = _prepared(config, sample)
    # Every row's leaf: the leaf sizes the health check compares against later.
    trained = _train(config, x, num_threads, progress, every_leaf=True)
    sizes = trained.leaf_sizes(len(x))
    config = with_soar_decided(config, x, trained.centroids, sizes, trained.lift, num_threads)
    # An empty copy in the dtype a build of data like the sample would hold (reorder_copy.py).
    placement = place_points(config, trained.centroids, trained.codebooks, x[:0], num_threads, progress,
                             leaves=np.zeros(0, np.int64), rows_dtype=rows_dtype_for(config, x))
    arrays = _with_lift(lay_out(placement, trained.centroids, trained.codebooks, config.score_ah.dimensions_per_block,
                                config.distance_measure == "squared_l2", num_threads), trained.lift)
    # health() measures the leaves' spread against the sample's.
    arrays["leaf_cv_at_training"] = np.array([leaf_balance(sizes)["leaf_size_cv"]])
    return config, arrays
