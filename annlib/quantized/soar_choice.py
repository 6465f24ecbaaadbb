"""Whether SOAR spilling pays on the data, decided from trained leaves (soar_lambda="auto").

SOAR stores each point in a second leaf, so a query finds a neighbour through either
copy: it reaches the same share of its neighbours in fewer leaves, but every leaf holds
about twice the copies. What decides is the points scanned. Sample rows act as queries
with their exact nearest neighbours (the row itself left out); for each, the leaves are
taken in the order a search probes them, and the points scanned until a share of the
neighbours are in a visited leaf are compared with and without the spilled copies (the
spill counted on a sample of rows), at leaf-level recall 0.90, 0.95 and 0.99: the ratio
is the mean of the three (one quantile alone moves with the few neighbours at its edge).
The plain leaf sizes are counted where every row's leaf is known, else estimated from a
sample's (a build knows only its codebook sample's leaves before it places the points).

SOAR's own costs, twice the codes and duplicates to drop, run about 20-25% at equal
points scanned when the codes sit in the cache: there it pays below a ratio of 0.75
(PAYS_BELOW). When the spilled codes exceed the last-level cache, the scan waits on
memory, which hides most of those costs, and it pays below 0.9 (PAYS_BELOW_BEYOND_CACHE).
Measured (AMD Zen 4, 32 MB L3; mean ratios over seeds 0-3 at k=10 / k=100): MiniLM
words-100k 0.38-0.41 / 0.49-0.51, SOAR 1.9-2.1x faster end to end; sift-150k (codes
5 MB) 0.85-0.92 / 0.89-0.94, SOAR 0.57-0.88x at k=10; photo-SIFT 1.68M (spilled codes
101 MB) 0.84-0.87 at k=10, SOAR 1.2-1.9x (0.88-1.13x at k=100). bench/soar_pays.py
prints the whole curve and the verdict.
"""
from __future__ import annotations

import dataclasses
import glob
from dataclasses import dataclass

import numpy as np

from ..config import IndexConfig
from ..defaults import SOAR_LAMBDA
from .assignment import leaves_with_spill
from .training import NormLift, exact_index

RECALLS = (0.90, 0.95, 0.99)  # the leaf-level recalls the scans are compared at
PAYS_BELOW = 0.75    # SOAR's points / plain points below which it is chosen, codes in cache
PAYS_BELOW_BEYOND_CACHE = 0.9  # the same when the spilled codes exceed the last-level cache
DEFAULT_CACHE_BYTES = 32 << 20  # the last-level cache where the system does not say
QUERIES = 500        # sample rows used as queries (200 moved photo-SIFT's ratio by 0.04 between seeds)
SPILL_SAMPLE = 20_000  # rows whose second leaf estimates the spilled copies per leaf
CHUNK_ROWS = 1 << 18   # rows searched exactly at a time (bounded memory on large data)


@dataclass(frozen=True)
class SoarVerdict:
    ratio: float          # SOAR's points scanned / plain points, the mean over RECALLS
    plain_leaves: int     # leaves visited to reach leaf-level recall 0.95 without SOAR
    soar_leaves: int      # and with it
    beyond_cache: bool = False  # the spilled codes exceed the last-level cache

    @property
    def pays(self) -> bool:
        return self.ratio < (PAYS_BELOW_BEYOND_CACHE if self.beyond_cache else PAYS_BELOW)


def last_level_cache_bytes() -> int:
    """The largest CPU cache (Linux: /sys, CPU 0's caches); DEFAULT_CACHE_BYTES elsewhere."""
    sizes = []
    for path in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text[:-1] if text[-1:] in "KMG" else text
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes) if sizes else DEFAULT_CACHE_BYTES


def code_bytes_per_point(dim: int, dims_per_block: int) -> int:
    """Bytes of one copy's 4-bit codes (blocks padded to a multiple of 4, as packed)."""
    blocks = -(-dim // dims_per_block)
    return (-(-blocks // 4) * 4) // 2


def leaf_ranks(queries: np.ndarray, centroids: np.ndarray, by_dot: bool) -> tuple[np.ndarray, np.ndarray]:
    """(order, rank): order[q] the leaves in the order query q probes them, rank[q, leaf] a
    leaf's place in it (0 = first); by <q, c> for inner products, by |q - c| (as
    <q, c> - |c|^2 / 2) for squared L2."""
    scores = queries @ centroids.T
    if not by_dot:
        scores -= 0.5 * np.einsum("ij,ij->i", centroids, centroids)[None, :]
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    ranks[np.arange(len(queries))[:, None], order] = np.arange(centroids.shape[0])[None, :]
    return order, ranks


def exact_neighbours(x: np.ndarray, rows: np.ndarray, k: int, by_dot: bool, num_threads: int) -> np.ndarray:
    """int64 [len(rows), k]: the k nearest neighbours of x[rows] in x, the row itself left out.
    x is searched CHUNK_ROWS at a time (a packed copy of each chunk, not of all of x)."""
    queries = np.ascontiguousarray(x[rows])
    best_ids = np.empty((len(rows), 0), np.int64)
    best = np.empty((len(rows), 0), np.float32)  # higher is nearer
    for start in range(0, len(x), CHUNK_ROWS):
        chunk = np.ascontiguousarray(x[start:start + CHUNK_ROWS])
        ids, scores = exact_index(chunk, by_dot, num_threads).search(queries, min(k + 1, len(chunk)), num_threads)
        best_ids = np.hstack([best_ids, np.asarray(ids, np.int64) + start])
        best = np.hstack([best, scores if by_dot else -scores])
        # Nearest first, ties to the smaller id (as one search over all of x breaks them).
        order = np.lexsort((best_ids, -best), axis=1)[:, :k + 1]
        best_ids = np.take_along_axis(best_ids, order, axis=1)
        best = np.take_along_axis(best, order, axis=1)
    found = best_ids
    keep = found != rows[:, None]
    # Drop the row itself where it came back (else the worst, so every query keeps k).
    keep[~(~keep).any(axis=1), -1] = False
    return found[keep].reshape(len(rows), k)


def soar_verdict(x: np.ndarray, centroids: np.ndarray, leaf_sizes: np.ndarray, k: int, by_dot: bool,
                 soar_lambda: float, lift: NormLift | None = None, seed: int = 0,
                 num_threads: int = 0, code_bytes: int = 0, cache_bytes: int | None = None) -> SoarVerdict:
    """The scan SOAR (soar_lambda) saves at leaf-level recalls RECALLS on x, whose rows sit in
    the leaves of `centroids` (chosen in the lift's space when one is given), `leaf_sizes`
    rows each (float [L]: counted, or estimated from a sample of rows' leaves).
    code_bytes: one copy's codes per point, to weigh the spilled index against cache_bytes
    (default: this machine's last-level cache); 0 counts the codes as in cache."""
    n = len(x)
    num_leaves = len(centroids)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, min(n, QUERIES), replace=False))
    k = max(1, min(k, n - 1))
    neighbours = exact_neighbours(x, rows, k, by_dot, num_threads)

    def both_leaves(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return leaves_with_spill(x[points], centroids, soar_lambda, lift, num_threads)

    primary, second = (a.reshape(neighbours.shape) for a in both_leaves(neighbours.ravel()))
    sample = rng.choice(n, min(n, SPILL_SAMPLE), replace=False)
    sample_primary, sample_second = both_leaves(sample)
    spilled = sample_second != sample_primary
    plain_sizes = np.asarray(leaf_sizes, np.float64)
    soar_sizes = plain_sizes + np.bincount(sample_second[spilled], minlength=num_leaves) * (n / len(sample))

    order, ranks = leaf_ranks(np.ascontiguousarray(x[rows]), centroids, by_dot)
    q = np.arange(len(rows))[:, None]
    plain_rank = ranks[q, primary].ravel()
    soar_rank = np.minimum(plain_rank, np.where(second != primary, ranks[q, second], num_leaves).ravel())

    plain_scanned = np.cumsum(plain_sizes[order], axis=1).mean(axis=0)
    soar_scanned = np.cumsum(soar_sizes[order], axis=1).mean(axis=0)

    def leaves_for(rank: np.ndarray, recall: float) -> int:
        # Leaves to visit so that `recall` of the neighbours are found: a quantile of their ranks.
        return int(np.sort(rank)[int(np.ceil(recall * len(rank))) - 1]) + 1

    ratios = [soar_scanned[leaves_for(soar_rank, r) - 1] / plain_scanned[leaves_for(plain_rank, r) - 1]
              for r in RECALLS]
    spilled_bytes = soar_sizes.sum() * code_bytes
    cache = last_level_cache_bytes() if cache_bytes is None else cache_bytes
    return SoarVerdict(float(np.mean(ratios)), leaves_for(plain_rank, 0.95), leaves_for(soar_rank, 0.95),
                       bool(spilled_bytes > cache))


def with_soar_decided(config: IndexConfig, x: np.ndarray, centroids: np.ndarray, leaf_sizes: np.ndarray,
                      lift: NormLift | None, num_threads: int) -> IndexConfig:
    """The config with soar_lambda="auto" replaced by the decision on x (leaf_sizes: rows per
    leaf, as soar_verdict takes them): SOAR_LAMBDA where soar_verdict says SOAR pays, else
    None (no spilling). Other configs come back as given."""
    tree = config.tree
    if tree is None or tree.soar_lambda != "auto":
        return config
    code_bytes = code_bytes_per_point(x.shape[1], config.score_ah.dimensions_per_block)  # a tree implies score_ah()
    pays = len(x) > 1 and soar_verdict(x, centroids, leaf_sizes, config.num_neighbors,
                                       config.distance_measure != "squared_l2", SOAR_LAMBDA, lift, tree.seed,
                                       num_threads, code_bytes=code_bytes).pays
    return dataclasses.replace(config, tree=dataclasses.replace(tree, soar_lambda=SOAR_LAMBDA if pays else None))
