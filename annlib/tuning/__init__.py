"""annlib.tuning: the constrained-optimization autotuner (docs/algorithms.md, section 5).

    ranks   for every true neighbour of every sample query, its rank at each stage
            (leaf rank, AH rank at each number of leaves searched), read from the
            index's own kernels, so recall(t) needs no further searches
    cost    a per-stage cost model whose constants are timed on this machine
    solve   min RecallLoss(t) + lambda * Cost(t), lambda bisected to meet the target
    tune    the user-facing annlib.tune() and its held-out validation
    autopilot  builder(...).autopilot(): the default build, then tune()

It reads the index only through the quantized searcher's public view of its
internals (leaf_order, leaves_of, leaf_slots, ah_candidates) and its stage timings.
"""
from . import autopilot  # noqa: F401  (registers builder(...).autopilot())
from .results import TuneResult
from .tune import tune

__all__ = ["TuneResult", "tune"]
