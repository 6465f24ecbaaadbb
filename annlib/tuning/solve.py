"""Choosing the knobs: min RecallLoss(t) + lambda * Cost(t), lambda bisected to meet the target.

t = (g, r): g indexes the rank table's leaves grid, r is the number of AH
candidates re-ranked (k <= r <= max_reorder). recall[g, r] and cost[g, r]
come from the rank table and the cost model. For a fixed lambda the
minimiser lies on the lower convex hull of the (cost, 1 - recall) cloud, so
the lambda that meets a target recall can overshoot it; a final polish walks
to neighbouring settings (nearby leaf counts, each with its smallest feasible
r) while the predicted cost falls and the constraint still holds.
"""
from __future__ import annotations

import numpy as np

from .results import FrontierPoint


class Unreachable(ValueError):
    """The target cannot be met by any setting the index offers."""


def _argmin(recall, cost, weight, k):
    objective = (1.0 - recall) + weight * cost
    objective[:, :k] = np.inf                # fewer than k candidates cannot return k
    return np.unravel_index(int(np.argmin(objective)), objective.shape)


def _bisect(recall, cost, k, feasible, feasible_when_large: bool, iterations=48):
    """Bisects lambda on a log scale for the boundary of the feasible region: the largest
    feasible lambda when small lambdas are feasible (a recall target: small lambda buys
    recall), the smallest when large ones are (a cost budget). Returns ((g, r), visited)."""
    lo, hi = 1e-12, 1e3
    visited = []

    def choose(weight):
        g, r = _argmin(recall, cost, weight, k)
        visited.append((g, r, weight))
        return g, r

    best = choose(hi if feasible_when_large else lo)  # feasible: the caller checked reachability
    for _ in range(iterations):
        mid = np.sqrt(lo * hi)
        g, r = choose(mid)
        if feasible(g, r):
            best = (g, r)
            hi, lo = (mid, lo) if feasible_when_large else (hi, mid)
        else:
            hi, lo = (hi, mid) if feasible_when_large else (mid, lo)
        if hi / lo < 1.0001:
            break
    return best, visited


def _polish(recall, cost, k, start, feasible, better):
    """Local search over leaf counts near `start`, each with its best feasible r."""
    g, r = start
    while True:
        candidates = []
        for g2 in range(max(0, g - 2), min(recall.shape[0], g + 3)):
            ok = [r2 for r2 in range(k, recall.shape[1]) if feasible(g2, r2)]
            if ok:
                candidates.append(min(((g2, r2) for r2 in ok), key=lambda t: better(*t)))
        nxt = min(candidates, key=lambda t: better(*t))
        if better(*nxt) >= better(g, r):
            return g, r
        g, r = nxt


def solve_for_recall(recall: np.ndarray, cost: np.ndarray, k: int, target: float):
    """Cheapest predicted setting with predicted recall >= target: ((g, r), explored)."""
    reachable = recall[:, k:].max()
    if reachable < target:
        g, r = np.unravel_index(int(np.argmax(np.where(np.arange(recall.shape[1]) >= k, recall, -1))), recall.shape)
        raise Unreachable(g, r, float(reachable))
    feasible = lambda g, r: recall[g, r] >= target  # noqa: E731
    start, visited = _bisect(recall, cost, k, feasible, feasible_when_large=False)
    chosen = _polish(recall, cost, k, start, feasible, lambda g, r: (cost[g, r], -recall[g, r]))
    return chosen, _explored(recall, cost, visited)


def solve_for_cost(recall: np.ndarray, cost: np.ndarray, k: int, budget_us: float):
    """Highest predicted recall with predicted cost <= budget: ((g, r), explored)."""
    cheapest = cost[:, k:].min()
    if cheapest > budget_us:
        g, r = np.unravel_index(int(np.argmin(np.where(np.arange(cost.shape[1]) >= k, cost, np.inf))), cost.shape)
        raise Unreachable(g, r, float(cheapest))
    feasible = lambda g, r: cost[g, r] <= budget_us  # noqa: E731
    start, visited = _bisect(recall, cost, k, feasible, feasible_when_large=True)
    chosen = _polish(recall, cost, k, start, feasible, lambda g, r: (-recall[g, r], cost[g, r]))
    return chosen, _explored(recall, cost, visited)


def _explored(recall, cost, visited) -> list:
    seen, out = set(), []
    for g, r, weight in visited:
        if (g, r) not in seen:
            seen.add((g, r))
            out.append((int(g), int(r), float(recall[g, r]), float(cost[g, r]), float(weight)))
    return sorted(out, key=lambda p: p[3])


def frontier_points(explored, leaves) -> list:
    return [FrontierPoint(int(leaves[g]), r, rec, c, w) for g, r, rec, c, w in explored]
