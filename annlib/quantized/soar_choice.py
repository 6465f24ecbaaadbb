"""Whether SOAR spilling pays on the data, decided from trained leaves (soar_lambda="auto").

SOAR stores each point in a second leaf, so a query finds a neighbour through either
copy: it reaches the same share of its neighbours in fewer leaves, but every leaf holds
about twice the copies. What decides is the points scanned. Sample rows act as queries
with their exact nearest neighbours (the row itself left out); for each, the leaves are
taken in the order a search probes them, and the points scanned until `RECALL` of the
neighbours are in a visited leaf are compared with and without the spilled copies (the
spill counted on a sample of rows). On the dev sets that ratio was 0.28-0.40 on
MiniLM words (SOAR 1.9-2.1x faster end to end) and 0.80-0.92 on SIFT (SOAR 0.66-0.86x:
its own costs, twice the codes and duplicates to drop, run about 20-25% at equal points
scanned), so SOAR is chosen below PAYS_BELOW. bench/soar_pays.py prints the whole curve.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .. import _core
from ..config import IndexConfig
from ..defaults import SOAR_LAMBDA
from .training import NormLift, exact_index

RECALL = 0.95        # the leaf-level recall the scans are compared at
PAYS_BELOW = 0.75    # SOAR's points / plain points below which it is chosen
QUERIES = 200        # sample rows used as queries
SPILL_SAMPLE = 20_000  # rows whose second leaf estimates the spilled copies per leaf
CHUNK_ROWS = 1 << 18   # rows searched exactly at a time (bounded memory on large data)


@dataclass(frozen=True)
class SoarVerdict:
    ratio: float          # SOAR's points scanned / plain points, at RECALL
    plain_leaves: int     # leaves visited to reach RECALL without SOAR
    soar_leaves: int      # and with it

    @property
    def pays(self) -> bool:
        return self.ratio < PAYS_BELOW


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


def soar_verdict(x: np.ndarray, centroids: np.ndarray, labels: np.ndarray, k: int, by_dot: bool,
                 soar_lambda: float, lift: NormLift | None = None, seed: int = 0,
                 num_threads: int = 0) -> SoarVerdict:
    """The scan SOAR (soar_lambda) saves at leaf-level recall RECALL on x, whose rows sit in
    the leaves `labels` of `centroids` (chosen in the lift's space when one is given)."""
    n = len(x)
    num_leaves = len(centroids)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, min(n, QUERIES), replace=False))
    k = max(1, min(k, n - 1))
    neighbours = exact_neighbours(x, rows, k, by_dot, num_threads)

    def second_leaves(points: np.ndarray) -> np.ndarray:
        pts = np.ascontiguousarray(x[points])
        centers = centroids
        if lift is not None:
            pts, centers = lift.rows(pts), lift.centers(centroids)
        return _core.soar_assign(pts, centers, np.ascontiguousarray(labels[points], dtype=np.int64),
                                 float(soar_lambda), num_threads).astype(np.int64)

    primary = labels[neighbours]
    second = second_leaves(neighbours.ravel()).reshape(neighbours.shape)
    sample = rng.choice(n, min(n, SPILL_SAMPLE), replace=False)
    sample_second = second_leaves(sample)
    spilled = sample_second != labels[sample]
    plain_sizes = np.bincount(labels, minlength=num_leaves).astype(np.float64)
    soar_sizes = plain_sizes + np.bincount(sample_second[spilled], minlength=num_leaves) * (n / len(sample))

    order, ranks = leaf_ranks(np.ascontiguousarray(x[rows]), centroids, by_dot)
    q = np.arange(len(rows))[:, None]
    plain_rank = ranks[q, primary].ravel()
    soar_rank = np.minimum(plain_rank, np.where(second != primary, ranks[q, second], num_leaves).ravel())

    def points_at_recall(rank: np.ndarray, sizes: np.ndarray) -> tuple[float, int]:
        # Leaves to visit so that RECALL of the neighbours are found: a quantile of their ranks.
        needed = int(np.sort(rank)[int(np.ceil(RECALL * len(rank))) - 1]) + 1
        return float(np.cumsum(sizes[order], axis=1)[:, needed - 1].mean()), needed

    plain_points, plain_leaves = points_at_recall(plain_rank, plain_sizes)
    soar_points, soar_leaves = points_at_recall(soar_rank, soar_sizes)
    return SoarVerdict(soar_points / plain_points, plain_leaves, soar_leaves)


def with_soar_decided(config: IndexConfig, x: np.ndarray, centroids: np.ndarray, labels: np.ndarray,
                      lift: NormLift | None, num_threads: int) -> IndexConfig:
    """The config with soar_lambda="auto" replaced by the decision on x: SOAR_LAMBDA where
    soar_verdict says SOAR pays, else None (no spilling). Other configs come back as given."""
    tree = config.tree
    if tree is None or tree.soar_lambda != "auto":
        return config
    pays = len(x) > 1 and soar_verdict(x, centroids, labels, config.num_neighbors,
                                       config.distance_measure != "squared_l2", SOAR_LAMBDA, lift, tree.seed,
                                       num_threads).pays
    return dataclasses.replace(config, tree=dataclasses.replace(tree, soar_lambda=SOAR_LAMBDA if pays else None))
