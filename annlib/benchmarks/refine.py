"""Extra query settings near each system's recall frontier, found by bisection.

The tables report, per recall target, the best QPS among the points that reach
it. On a fixed grid that figure depends on where the grid's steps fall: a
system that needs 34 leaves for recall 0.95 is read at the grid's 42 when the
step below is 30, and two systems can lose different shares that way. So after
its grid, every build (whatever the system) is measured again between the
fastest point reaching each target and its nearest grid neighbour that misses
the target, one integer knob at a time (leaves, reorder, nprobe, ef), halving
the gap each round; a fastest point at the grid's smallest setting of a knob is
bisected toward that knob's floor (1, or k for the re-ranking depth and ef), as
a grid that starts above a system's best setting is the same loss. Every system
gets the same rule; the extra points are ordinary results, marked with the
round that asked for them.
"""
from __future__ import annotations

from .plot import MODES, TARGETS  # the tables' recall columns and timing modes

QPS_KEYS = tuple(key for key, _, _ in MODES)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _key(query: dict) -> tuple:
    return tuple(sorted(query.items()))


def floors_for(k: int) -> dict:
    """The smallest setting of each knob that is not 1: the re-ranking depth and a graph's ef
    must reach k."""
    return {"reorder": k, "ef": k}


def proposals(points: list, targets=TARGETS, floors=None) -> list:
    """Query settings to measure next. `points`: dicts with "query" (the knobs),
    "recall" and the QPS of each of QPS_KEYS. For each target and mode, the fastest
    point reaching the target; for each integer knob of it, the nearest smaller
    value measured with every other knob equal: if that point misses the target,
    the midpoint between the two (when it is a new setting). Without a smaller
    value, the midpoint toward the knob's floor (`floors`, default 1) instead."""
    floors = floors or {}
    measured = {_key(p["query"]) for p in points}
    out = []
    for target in targets:
        reached = [p for p in points if p["recall"] >= target]
        if not reached:
            continue
        for qps in QPS_KEYS:
            best = max(reached, key=lambda p: p[qps])
            for knob, value in best["query"].items():
                if not _is_int(value):
                    continue
                others = {k: v for k, v in best["query"].items() if k != knob}
                below = [p for p in points
                         if _is_int(p["query"].get(knob)) and p["query"][knob] < value
                         and {k: v for k, v in p["query"].items() if k != knob} == others]
                if below:
                    nearest = max(below, key=lambda p: p["query"][knob])
                    if nearest["recall"] >= target:
                        continue  # the smaller setting reaches the target too: nothing to bisect
                    lo = nearest["query"][knob]
                else:
                    lo = floors.get(knob, 1) - 1  # as if the floor's step below missed: the floor can be asked
                mid = (lo + value) // 2
                query = dict(best["query"], **{knob: mid})
                if lo < mid < value and _key(query) not in measured:
                    measured.add(_key(query))
                    out.append(query)
    return out
