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
    from scipy.optimize import nnls

    return nnls(a, b)[0]


def measure_cost_model(searcher, queries: np.ndarray, k: int, table, progress=None) -> CostModel:
    """Times the stages at 4 leaf counts x 2 reorder sizes on up to 200 queries, one query per call."""
    sample = queries[:200]
    g = len(table.leaves)
    leaf_picks = sorted({round(f * (g - 1)) for f in (0.0, 0.4, 0.7, 1.0)})
    reorders = sorted({max(k, 2 * k), max(k, min(table.max_reorder, 25 * k))})
    rows = []
    for i in leaf_picks:
        for r in reorders:
            t = searcher.stage_times(sample, k, leaves_to_search=int(table.leaves[i]), pre_reorder_num_neighbors=r)
            per_query = {key: v / len(sample) * 1e6 for key, v in t.items()}
            rows.append((int(table.leaves[i]), float(table.scanned_slots[i]), r, per_query))
            if progress is not None:
                progress.update(1)
    fixed = float(np.mean([p["total"] - p["scan"] - p["reorder"] for *_, p in rows]))
    scan = _nnls(np.array([[l, s] for l, s, _, _ in rows]), np.array([p["scan"] for *_, p in rows]))
    reorder = _nnls(np.array([[r, 1.0] for _, _, r, _ in rows]), np.array([p["reorder"] for *_, p in rows]))
    return CostModel(fixed + float(reorder[1]), float(scan[0]), float(scan[1]), float(reorder[0]))
