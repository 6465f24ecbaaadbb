"""Cost model of one single-threaded query, with constants timed on this machine.

    cost(l, r) = fixed + per_leaf * l + per_slot * slots(l) + per_candidate * r     [microseconds]

slots(l) is the mean number of code slots in a query's best l leaves (from the
rank table). The constants come from timing the index's own search stages
(centroid scoring + LUT build, scan, reorder; searcher.stage_times) at a few
settings spread over the grid and fitting each stage by non-negative least
squares, so the model reflects this CPU, SIMD level and index layout.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class CostModel:
    fixed_us: float
    per_leaf_us: float
    per_slot_us: float
    per_candidate_us: float

    def predict(self, leaves, slots, reorder):
        return (self.fixed_us + self.per_leaf_us * np.asarray(leaves, dtype=float)
                + self.per_slot_us * np.asarray(slots, dtype=float)
                + self.per_candidate_us * np.asarray(reorder, dtype=float))

    def as_dict(self) -> dict:
        return asdict(self)


def _nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """argmin |a x - b| over x >= 0, for the few columns of a cost fit: the least-squares
    fit on each subset of the columns (the others held at 0), the closest of those whose
    coefficients are all >= 0. The optimum is one of them (its nonzero coefficients are
    the free fit on their columns), so this is exact."""
    best, best_residual = np.zeros(a.shape[1]), float(b @ b)
    for mask in range(1, 1 << a.shape[1]):
        columns = [j for j in range(a.shape[1]) if mask >> j & 1]
        x = np.linalg.lstsq(a[:, columns], b, rcond=None)[0]
        if np.all(x >= 0):
            residual = a[:, columns] @ x - b
            squared = float(residual @ residual)
            if squared < best_residual:
                best = np.zeros(a.shape[1])
                best[columns] = x
                best_residual = squared
    return best


SAMPLE_QUERIES = 200     # queries timed per setting, at most ...
SECONDS_PER_SETTING = 0.25  # ... and fewer where they take longer than this (every leaf searched)
MIN_TIMED_QUERIES = 25


def _stage_times_per_query(searcher, sample: np.ndarray, k: int, leaves: int, reorder: int) -> dict:
    """Mean microseconds per query of each stage at one setting: a first MIN_TIMED_QUERIES,
    then as many more of the sample as fit SECONDS_PER_SETTING at their pace."""
    def timed(queries):
        t = searcher.stage_times(queries, k, leaves_to_search=leaves, pre_reorder_num_neighbors=reorder)
        return {key: v / len(queries) * 1e6 for key, v in t.items()}

    first = timed(sample[:MIN_TIMED_QUERIES])
    wanted = int(min(len(sample), SECONDS_PER_SETTING * 1e6 / max(first["total"], 1e-3)))
    return first if wanted <= MIN_TIMED_QUERIES else timed(sample[:wanted])


def measure_cost_model(searcher, queries: np.ndarray, k: int, table, progress=None) -> CostModel:
    """Times the stages at 4 leaf counts x 2 reorder sizes on up to 200 queries, one query
    per call (fewer at the slowest settings: see _stage_times_per_query)."""
    sample = queries[:SAMPLE_QUERIES]
    g = len(table.leaves)
    leaf_picks = sorted({round(f * (g - 1)) for f in (0.0, 0.4, 0.7, 1.0)})
    reorders = sorted({max(k, 2 * k), max(k, min(table.max_reorder, 25 * k))})
    rows = []
    for i in leaf_picks:
        for r in reorders:
            per_query = _stage_times_per_query(searcher, sample, k, int(table.leaves[i]), r)
            rows.append((int(table.leaves[i]), float(table.scanned_slots[i]), r, per_query))
            if progress is not None:
                progress.update(1)
    fixed = float(np.mean([p["total"] - p["scan"] - p["reorder"] for *_, p in rows]))
    scan = _nnls(np.array([[l, s] for l, s, _, _ in rows]), np.array([p["scan"] for *_, p in rows]))
    reorder = _nnls(np.array([[r, 1.0] for _, _, r, _ in rows]), np.array([p["reorder"] for *_, p in rows]))
    return CostModel(fixed + float(reorder[1]), float(scan[0]), float(scan[1]), float(reorder[0]))
