"""Per-stage ranks of the true neighbours, read from the index's own kernels.

For each sample query and each of its true top-k neighbours (ids) this records
  - its leaf rank: the rank of its best leaf (with SOAR, the better of its two)
    among all leaves, by the query's centroid score;
  - its AH rank at each number of leaves searched l in a grid: its position in
    the AH candidate list the index's LUT16 scan produces over the best l leaves
    (after SOAR de-duplication), or max_reorder when it is not in the first
    max_reorder candidates.
With an exact (float32) reorder a true top-k neighbour among the candidates is
always returned, so recall(l, r) is the share of true neighbours whose AH rank
at l is below r: every setting's recall comes from this table, no more searches.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def leaf_grid(num_leaves: int, count: int = 32) -> np.ndarray:
    """About `count` distinct leaf counts from 1 to num_leaves, geometrically spaced."""
    return np.unique(np.round(np.geomspace(1, num_leaves, count)).astype(np.int64))


@dataclass
class RankTable:
    leaves: np.ndarray          # [G] the grid of leaves_to_search values
    max_reorder: int            # AH ranks at or beyond this are stored as max_reorder
    ah_rank: np.ndarray         # [G, nq, k] int32
    leaf_rank: np.ndarray       # [nq, k] int32, 0 = the query's best leaf
    scanned_slots: np.ndarray   # [G] mean code slots scanned per query (padding included)

    def recall(self) -> np.ndarray:
        """[G, max_reorder + 1]: recall[g, r] with leaves[g] leaves searched and r re-ranked."""
        g, nq, k = self.ah_rank.shape
        counts = np.zeros((g, self.max_reorder + 2), dtype=np.int64)
        for i in range(g):
            counts[i] = np.bincount(self.ah_rank[i].ravel(), minlength=self.max_reorder + 2)[:self.max_reorder + 2]
        # recall[g, r] = share of ranks < r
        cumulative = np.concatenate([np.zeros((g, 1), dtype=np.int64), np.cumsum(counts, axis=1)], axis=1)
        return cumulative[:, :self.max_reorder + 1] / float(nq * k)

    def per_query_recall(self, g: int, r: int) -> np.ndarray:
        return (self.ah_rank[g] < r).mean(axis=1)

    def leaf_recall(self) -> np.ndarray:
        """[G]: share of true neighbours whose best leaf is among the first leaves[g] (an upper bound)."""
        return np.array([(self.leaf_rank < l).mean() for l in self.leaves])


_TABLE_IDS = 1 << 25  # ids below this are looked up in a table indexed by id (128 MB at most)


def _positions(candidates: np.ndarray, wanted: np.ndarray, missing: int) -> np.ndarray:
    """Position of each wanted id [nq, m] in its row of candidates [nq, width] (-1 padding;
    a row holds each id once), `missing` where absent (a wanted -1 is no id: always
    missing). Ids below _TABLE_IDS (an index's default ids are 0..n-1) go through one table
    indexed by id, filled and cleared row by row: a few passes over the candidates, where
    sorting them cost ten times as much."""
    found = _positions_of_ids(candidates, wanted, missing)
    return np.where(wanted < 0, np.int32(missing), found).astype(np.int32)


def _positions_of_ids(candidates: np.ndarray, wanted: np.ndarray, missing: int) -> np.ndarray:
    nq, width = candidates.shape
    low = min(int(candidates.min(initial=0)), int(wanted.min(initial=0)))
    top = max(int(candidates.max(initial=0)), int(wanted.max(initial=0)))
    if low < -1 or top >= _TABLE_IDS:
        return _positions_by_sorting(candidates, wanted, missing)
    where = np.full(top + 2, missing, dtype=np.int32)  # padding (-1) lands in the spare last entry
    columns = np.arange(width, dtype=np.int32)
    out = np.empty(wanted.shape, dtype=np.int32)
    for i in range(nq):
        row = candidates[i]
        where[row] = columns
        out[i] = where[wanted[i]]
        where[row] = missing
    return out


def _positions_by_sorting(candidates: np.ndarray, wanted: np.ndarray, missing: int) -> np.ndarray:
    """_positions for any int64 ids: one sort of (row, id) keys over ids renumbered densely."""
    nq, width = candidates.shape
    known, numbers = np.unique(np.concatenate([candidates.ravel(), wanted.ravel()]), return_inverse=True)
    span = len(known) + 1
    rows = np.arange(nq, dtype=np.int64)[:, None] * span
    keys = (rows + numbers[:candidates.size].reshape(candidates.shape)).ravel()
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    looked_up = (rows + numbers[candidates.size:].reshape(wanted.shape)).ravel()
    at = np.minimum(np.searchsorted(sorted_keys, looked_up), len(sorted_keys) - 1)
    found = sorted_keys[at] == looked_up
    return np.where(found, order[at] % width, missing).reshape(wanted.shape).astype(np.int32)


def record_ranks(searcher, queries: np.ndarray, truth: np.ndarray, max_reorder: int, leaves: np.ndarray,
                 num_threads: int = 0, progress=None, exclude: np.ndarray | None = None,
                 k: int | None = None) -> RankTable:
    """The RankTable of `queries` with true ids `truth` [nq, m], read through the index's
    public view of its internals (leaf_order, leaves_of, leaf_slots, ah_ranks or ah_candidates).
    exclude: per query, an id that does not count (a database point used as a query is
    its own nearest neighbour; searches drop it, so it must not take a candidate's place).
    k: with m > k, the rows list more points that count as found (ties within a tolerance,
    -1 padding after them) and a query finds at most k: each stage keeps the k best ranks
    of its row, since any k of them re-ranked fill the k results."""
    num_leaves = searcher.num_leaves
    k = truth.shape[1] if k is None else k
    valid = truth >= 0
    truth = np.where(valid, truth, truth[:, :1])  # padding looked up as the row's first id, then dropped
    order = searcher.leaf_order(queries, num_threads=num_threads)   # [nq, L] best leaf first
    rank_of_leaf = np.empty_like(order)
    np.put_along_axis(rank_of_leaf, order, np.arange(num_leaves, dtype=order.dtype)[None, :].repeat(len(queries), 0),
                      axis=1)
    # The better-ranked of each true neighbour's (up to two) leaves.
    held = searcher.leaves_of(truth.ravel()).reshape(*truth.shape, 2)
    best = np.full(truth.shape, num_leaves, dtype=np.int64)
    for copy in (0, 1):
        leaf = held[..., copy]
        rank = np.take_along_axis(rank_of_leaf, np.maximum(leaf, 0), axis=1)
        best = np.where(leaf >= 0, np.minimum(best, rank), best)
    best = _best_k(np.where(valid, best, num_leaves), k)

    sizes = searcher.leaf_slots()
    scanned = np.cumsum(sizes[order], axis=1).mean(axis=0)    # [num_leaves] mean slots over the first l leaves

    wanted = truth if exclude is None else np.concatenate([truth, exclude[:, None]], axis=1)
    ah_rank = np.empty((len(leaves), len(truth), k), dtype=np.int32)
    for g, found in enumerate(_ah_positions(searcher, queries, leaves, max_reorder, wanted, num_threads, progress)):
        ranks = found[:, :truth.shape[1]]
        if exclude is not None:
            own = found[:, -1:]
            ranks = ranks - ((own < ranks) & (ranks < max_reorder)).astype(np.int32)
        ah_rank[g] = _best_k(np.where(valid, ranks, max_reorder), k)
    return RankTable(np.asarray(leaves), max_reorder, ah_rank, best.astype(np.int32),
                     scanned[np.asarray(leaves) - 1])


def _ah_positions(searcher, queries, leaves, max_reorder, wanted, num_threads, progress):
    """[G, nq, m]: each wanted id's position among the best max_reorder AH candidates at
    each leaf count (max_reorder where absent). One index answers it in one pass
    (ah_ranks); a sharded one with a search per leaf count."""
    if hasattr(searcher, "ah_ranks"):
        positions = searcher.ah_ranks(queries, leaves, max_reorder, wanted, num_threads=num_threads)
        if progress is not None:
            progress.update(len(leaves))
        return positions
    positions = np.empty((len(leaves), *wanted.shape), dtype=np.int32)
    for g, l in enumerate(leaves):
        candidates, _ = searcher.ah_candidates(queries, int(l), max_reorder, num_threads=num_threads)
        positions[g] = _positions(candidates, wanted, max_reorder)
        if progress is not None:
            progress.update(1)
    return positions


def _best_k(ranks: np.ndarray, k: int) -> np.ndarray:
    """The k smallest of each row (the row itself when it is k wide)."""
    return ranks if ranks.shape[1] == k else np.sort(ranks, axis=1)[:, :k]
