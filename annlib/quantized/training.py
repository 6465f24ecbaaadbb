"""Training the quantized index: k-means leaves and AH codebooks, on samples.

k-means (the tree): Lloyd's algorithm on a sample. Each assignment step is a
top-1 search with annlib's own brute-force engine (squared L2, or inner
product against unit centers for spherical k-means), multi-threaded with the
GIL released. Empty leaves are re-seeded with the sample points worst served by
their current center.

AH codebooks: per block of dims_per_block dimensions, 16 centers (4-bit codes)
trained with Lloyd's algorithm on a sample of residuals (point minus its leaf
center); encoding then minimises the score-aware loss (placement.py).

Progress bars show the iterations; Ctrl-C stops within a second.
"""
from __future__ import annotations

import numpy as np

from .. import _core
from .._progress import progress_bar

NUM_CENTERS = 16  # per code block: 4-bit codes


def exact_index(rows: np.ndarray, by_dot: bool, num_threads: int = 0):
    """An exact float32 search over rows (float32 [n, d]): by inner product, else squared L2.
    Its search(queries, k, num_threads) gives (ids, inner products or squared distances)."""
    packed = _core.pack_dense(rows, "float32", not by_dot, num_threads)
    packed["meta"] = np.array(rows.shape, np.int64)
    return _core.DenseIndex(packed, _core.FORMAT_VERSION, "dot_product" if by_dot else "squared_l2", "float32")


def assign(data: np.ndarray, centers: np.ndarray, *, spherical: bool = False, num_threads: int = 0):
    """Nearest center of each row: (labels int64 [n], squared distances or -inner products [n])."""
    ids, scores = exact_index(centers, spherical, num_threads).search(data, 1, num_threads)
    return ids[:, 0], (-scores[:, 0] if spherical else scores[:, 0])


class NormLift:
    """The extra coordinate of augment_norms: x -> [x, sqrt(M^2 - |x|^2)], M the largest
    norm the index was trained with (points added later with a larger norm get 0). Inner
    products with [q, 0] are unchanged, and |[x, lift] - [c, c_lift]|^2 ranks the leaves of
    a point by what a query probing for large <q, x> needs (Bachrach et al. 2014)."""

    CHUNK = 1 << 16  # rows lifted at a time: bounded extra memory

    def __init__(self, bound: float, centroid_lift: np.ndarray | None = None):
        self.bound = float(bound)
        self.centroid_lift = centroid_lift  # float32 [L]: the centers' extra coordinate

    @classmethod
    def fit(cls, x: np.ndarray) -> "NormLift":
        norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64)) if len(x) else np.zeros(1)
        return cls(float(norms.max()))

    def rows(self, x: np.ndarray) -> np.ndarray:
        """[x, lift] as float32 [n, d + 1]."""
        norm2 = np.einsum("ij,ij->i", x, x, dtype=np.float64)
        lift = np.sqrt(np.maximum(self.bound ** 2 - norm2, 0.0))
        return np.ascontiguousarray(np.hstack([x, lift[:, None]]), dtype=np.float32)

    def centers(self, centroids: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.hstack([centroids, self.centroid_lift[:, None]]), dtype=np.float32)

    def assign(self, x: np.ndarray, centroids: np.ndarray, num_threads: int = 0) -> np.ndarray:
        """The primary leaf of each row of x, in the lifted space (in chunks)."""
        centers = self.centers(centroids)
        labels = np.empty(len(x), np.int64)
        for i in range(0, len(x), self.CHUNK):
            labels[i:i + self.CHUNK] = assign(self.rows(x[i:i + self.CHUNK]), centers, num_threads=num_threads)[0]
        return labels


def training_sample(data: np.ndarray, training_sample_size: int, num_leaves: int, rng) -> np.ndarray:
    """The rows k-means trains on: all of them, or training_sample_size (at least num_leaves)
    drawn by rng, in data order."""
    n = data.shape[0]
    size = min(n, max(training_sample_size, num_leaves))
    return data if size == n else data[np.sort(rng.choice(n, size, replace=False))]


def _initial_centers(sample, num_leaves, init, rng):
    if init == "random":
        return sample[rng.choice(len(sample), num_leaves, replace=False)].copy()
    # k-means++ on a bounded candidate subset: O(candidates * num_leaves * d).
    cand = sample[rng.choice(len(sample), min(len(sample), 8 * num_leaves), replace=False)]
    centers = np.empty((num_leaves, sample.shape[1]), dtype=np.float32)
    centers[0] = cand[rng.integers(len(cand))]
    d2 = ((cand - centers[0]) ** 2).sum(1)
    for i in range(1, num_leaves):
        total = d2.sum()
        pick = rng.integers(len(cand)) if total <= 0 else rng.choice(len(cand), p=d2 / total)
        centers[i] = cand[pick]
        np.minimum(d2, ((cand - centers[i]) ** 2).sum(1), out=d2)
    return centers


def _reseed_points(sample, cost, count):
    """The `count` worst-served sample points with distinct coordinates
    (duplicates would give twin centers that leave one leaf empty again)."""
    chosen, seen = [], set()
    for i in np.argsort(-cost, kind="stable"):
        key = sample[i].tobytes()
        if key not in seen:
            seen.add(key)
            chosen.append(i)
            if len(chosen) == count:
                break
    # Fewer distinct points than leaves: some leaves must stay empty anyway.
    chosen += [chosen[i % len(chosen)] for i in range(count - len(chosen))]
    return sample[np.array(chosen)]


def _normalize(centers):
    norms = np.linalg.norm(centers, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (centers / norms).astype(np.float32)


def kmeans(data: np.ndarray, num_leaves: int, *, iterations: int = 12, training_sample_size: int = 100_000,
           init: str = "random", spherical: bool = False, seed: int = 0, num_threads: int = 0,
           progress: bool | None = None) -> np.ndarray:
    """Trains num_leaves centers (float32 [num_leaves, d]) on a sample of data (float32, C-contiguous).

    spherical: unit-norm centers and inner-product assignment (for dot product).
    """
    if init not in ("random", "kmeans++"):
        raise ValueError(f"init must be 'random' or 'kmeans++', got {init!r}")
    n = data.shape[0]
    if not 1 <= num_leaves <= n:
        raise ValueError(f"num_leaves must be in [1, {n}] (the number of points), got {num_leaves}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    rng = np.random.default_rng(seed)
    sample = training_sample(data, training_sample_size, num_leaves, rng)
    centers = _initial_centers(sample, num_leaves, init, rng)
    if spherical:
        centers = _normalize(centers)
    for _ in progress_bar(range(iterations), progress=progress, desc="k-means", unit="iter"):
        labels, cost = assign(sample, centers, spherical=spherical, num_threads=num_threads)
        # Per-leaf sums in C++ on every thread (float32, in row order: the sums the one-hot
        # sparse product that did this single-threaded gave, bit for bit).
        sums, counts = _core.center_sums(sample, np.ascontiguousarray(labels, np.int64), num_leaves, num_threads)
        nonempty = counts > 0
        centers[nonempty] = (sums[nonempty] / counts[nonempty, None]).astype(np.float32)
        empty = np.flatnonzero(~nonempty)
        if len(empty):
            centers[empty] = _reseed_points(sample, cost, len(empty))
        if spherical:
            centers = _normalize(centers)
    return np.ascontiguousarray(centers, dtype=np.float32)


def train_codebooks(residuals: np.ndarray, dims_per_block: int, *, iterations: int = 10,
                    training_sample_size: int = 100_000, seed: int = 0, num_threads: int = 0,
                    progress: bool | None = None) -> np.ndarray:
    """Per-block k-means with 16 centers on (a sample of) residuals [n, dim]:
    float32 [num_blocks, 16, dims_per_block]."""
    n, dim = residuals.shape
    num_blocks = dim // dims_per_block
    rng = np.random.default_rng(seed)
    size = min(n, training_sample_size)
    sample = residuals if size == n else residuals[np.sort(rng.choice(n, size, replace=False))]
    blocks = sample.reshape(size, num_blocks, dims_per_block)
    # Start each block from 16 random sample points (repeats only when the sample is tiny).
    if size < NUM_CENTERS or size >= NUM_CENTERS * num_blocks:
        picks = rng.choice(size, (num_blocks, NUM_CENTERS), replace=size < NUM_CENTERS)
    else:  # fewer points than blocks x centers: distinct points within each block
        picks = np.stack([rng.choice(size, NUM_CENTERS, replace=False) for _ in range(num_blocks)])
    centers = np.ascontiguousarray(blocks[picks, np.arange(num_blocks)[:, None]], dtype=np.float32)
    for _ in progress_bar(range(iterations), progress=progress, desc="AH codebooks", unit="iter"):
        codes = _core.ah_encode(sample, sample, centers, 0.0, dim, 0, num_threads)
        # One pass in C++ (numpy's weighted bincount per dimension was a third of a build).
        sums, counts = _core.block_center_sums(sample, codes, dims_per_block, num_threads)
        filled = counts > 0
        centers[filled] = (sums[filled] / counts[filled][:, None]).astype(np.float32)
        # An empty center restarts at a random sample point of its block.
        for b, j in zip(*np.nonzero(~filled)):
            centers[b, j] = blocks[rng.integers(size), b]
    return centers
