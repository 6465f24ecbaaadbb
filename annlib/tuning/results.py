"""What the tuner returns."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..params import SearchParams


@dataclass(frozen=True)
class FrontierPoint:
    """One setting the optimizer visited: its knobs and the model's prediction."""
    leaves_to_search: int
    pre_reorder_num_neighbors: int
    predicted_recall: float
    predicted_cost_us: float
    cost_weight: float          # the lambda that selected it (None-like 0.0 for polish steps)


@dataclass
class TuneResult:
    """The chosen settings, what the model predicted for them, and what was measured
    with them on held-out queries that the model never saw."""
    params: SearchParams
    target_recall: float | None
    max_latency_us: float | None
    predicted_recall: float
    predicted_cost_us: float
    heldout_recall: float
    heldout_latency_us: float
    num_fit_queries: int
    num_heldout_queries: int
    queries_source: str                 # "given queries" or "database sample (no query log)"
    tuning_seconds: float
    cost_model: dict                    # the fitted per-stage constants (microseconds)
    frontier: list = field(default_factory=list)   # [FrontierPoint] explored by the optimizer
    recall_margin: float = 0.0          # added to the target: one standard error of the sample's estimate
    recall_tolerance: float = 0.0       # a point within this of the k-th true score counted as found

    def summary(self) -> str:
        p = self.params
        goal = (f"target recall {self.target_recall}" if self.target_recall is not None
                else f"max latency {self.max_latency_us} us")
        margin = f" (target + margin {self.recall_margin:.4f})" if self.recall_margin else ""
        ties = f"near-ties within {self.recall_tolerance:g} of the k-th score count; " if self.recall_tolerance else ""
        return (f"{goal}: leaves_to_search={p.leaves_to_search}, pre_reorder_num_neighbors="
                f"{p.pre_reorder_num_neighbors} (k={p.final_num_neighbors}); predicted recall{margin} "
                f"{self.predicted_recall:.4f} at {self.predicted_cost_us:.1f} us/query; held-out "
                f"({self.num_heldout_queries} queries) recall {self.heldout_recall:.4f} at "
                f"{self.heldout_latency_us:.1f} us/query; queries: {self.queries_source}; {ties}"
                f"tuned in {self.tuning_seconds:.1f} s")
