"""Which shard holds what.

By leaf (the default): each shard owns a set of whole leaves, neighbours together
and balanced by their sizes; a point's copy lives on the shard of its leaf, so a
SOAR point whose two leaves belong to two shards is held by both (its reorder row
too). A query's leaves go only to the shards that own them.

Random split: each point (both of its copies) lives on the shard its id hashes
to; every shard holds part of every leaf, and every query goes to every shard.
"""
from __future__ import annotations

import heapq

import numpy as np

from ..quantized.layout import upsert_arguments
from ..quantized.placement import Placement

MODES = ("leaf", "random")


def assign_leaves(leaf_sizes: np.ndarray, num_shards: int, centers: np.ndarray | None = None) -> np.ndarray:
    """The shard of each leaf (int32 [num_leaves]), the shards balanced by the leaves' sizes.

    With centers (the leaves' centers, [num_leaves, d]), neighbouring leaves go to one
    shard, so that a query's leaves, which lie close together, touch few shards: the
    centers are cut in two across their main direction, at the point that splits the
    size in the shards' proportion, and each side again, down to one shard each (every
    shard within a few leaves of the mean). Without, largest leaf first to the least
    loaded shard (ties: smaller leaf, smaller shard): within one leaf of the mean, the
    leaves scattered."""
    sizes = np.asarray(leaf_sizes, np.int64)
    owner = np.empty(len(sizes), np.int32)
    if centers is not None:
        _bisect(np.asarray(centers, np.float64), sizes, np.arange(len(sizes)), 0, num_shards, owner)
        return owner
    loads = [(0, shard) for shard in range(num_shards)]
    for leaf in np.lexsort((np.arange(len(sizes)), -sizes)):
        load, shard = heapq.heappop(loads)
        owner[leaf] = shard
        heapq.heappush(loads, (load + int(sizes[leaf]), shard))
    return owner


def _bisect(centers: np.ndarray, sizes: np.ndarray, leaves: np.ndarray, first: int, count: int,
            owner: np.ndarray) -> None:
    """Gives `leaves` to shards first .. first + count - 1 (see assign_leaves)."""
    if count == 1:
        owner[leaves] = first
        return
    if len(leaves) <= count:  # more shards than leaves: one leaf each, the rest empty
        owner[leaves] = first + np.arange(len(leaves))
        return
    weights = sizes[leaves] + 1.0  # an empty leaf still counts a little
    points = centers[leaves]
    centered = points - np.average(points, axis=0, weights=weights)
    # The main direction of the weighted centers (their first right singular vector).
    direction = np.linalg.svd(centered * np.sqrt(weights)[:, None], full_matrices=False)[2][0]
    # Ties in the projection go by leaf number, so the cut does not depend on sort details.
    order = leaves[np.lexsort((leaves, centered @ direction))]
    left = count // 2
    cumulative = np.cumsum(sizes[order])
    target = cumulative[-1] * left / count
    cut = int(np.searchsorted(cumulative, target))  # the first prefix of at least the target
    if cut > 0 and target - cumulative[cut - 1] < cumulative[cut] - target:
        cut -= 1
    cut = min(max(cut + 1, left), len(order) - (count - left))  # leaves order[:cut]; each side one per shard
    _bisect(centers, sizes, order[:cut], first, left, owner)
    _bisect(centers, sizes, order[cut:], first + left, count - left, owner)


def shard_of_ids(ids: np.ndarray, num_shards: int) -> np.ndarray:
    """Random split: the shard of each id (a 64-bit mix of the id, so that runs of ids
    spread evenly)."""
    z = np.asarray(ids, np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        z = (z + np.uint64(0x9E3779B97F4A7C15)) * np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(31)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(29)
    return (z % np.uint64(num_shards)).astype(np.int32)


def _subset(placement: Placement, members: np.ndarray, second: np.ndarray | None) -> Placement:
    """The placement of points `members` (indices, ascending), each with its primary copy;
    `second`: per member, the index into placement.spilled of a SOAR copy it keeps here
    (-1: none), or None for none at all."""
    rows = None if placement.rows is None else {key: value[members] for key, value in placement.rows.items()}
    if second is None or not (second >= 0).any():
        empty = np.empty(0, np.int64)
        return Placement(placement.leaves[members], placement.codes[members],
                         None if placement.bias is None else placement.bias[members], empty, empty,
                         placement.spill_codes[:0], None if placement.spill_bias is None else placement.spill_bias[:0],
                         rows)
    keep = np.flatnonzero(second >= 0)
    spill = second[keep]
    return Placement(placement.leaves[members], placement.codes[members],
                     None if placement.bias is None else placement.bias[members], keep.astype(np.int64),
                     placement.spill_leaves[spill], placement.spill_codes[spill],
                     None if placement.spill_bias is None else placement.spill_bias[spill], rows)


def _spill_copy_as_primary(placement: Placement, members: np.ndarray, spill: np.ndarray) -> Placement:
    """Points held here by their SOAR copy only: that copy becomes the shard's only copy."""
    rows = None if placement.rows is None else {key: value[members] for key, value in placement.rows.items()}
    empty = np.empty(0, np.int64)
    return Placement(placement.spill_leaves[spill], placement.spill_codes[spill],
                     None if placement.spill_bias is None else placement.spill_bias[spill], empty, empty,
                     placement.spill_codes[:0], None if placement.spill_bias is None else placement.spill_bias[:0],
                     rows)


def split(placement: Placement, ids: np.ndarray, numbers: np.ndarray, num_shards: int,
          owner: np.ndarray | None) -> list[dict]:
    """Each shard's part of placed points ({"ids", "numbers", "upsert", "guests"}: see
    _part), the points in their input order; numbers: their insertion numbers
    (ordering.py). owner: the shard of each leaf (by leaf), or None (random split by id)."""
    n = len(ids)
    spill_index = np.full(n, -1, np.int64)  # each point's SOAR copy in placement.spill_*, or -1
    spill_index[placement.spilled] = np.arange(len(placement.spilled))
    if owner is None:
        point_shard = shard_of_ids(ids, num_shards)
        parts = []
        for shard in range(num_shards):
            members = np.flatnonzero(point_shard == shard)
            parts.append(_part(ids[members], numbers[members], _subset(placement, members, spill_index[members])))
        return parts
    primary = owner[placement.leaves]
    spill_shard = np.full(n, -1, np.int64)
    spill_shard[placement.spilled] = owner[placement.spill_leaves]
    parts = []
    for shard in range(num_shards):
        here = primary == shard
        second = np.where(here & (spill_shard == shard), spill_index, -1)
        main = np.flatnonzero(here)
        only_spill = np.flatnonzero(~here & (spill_shard == shard))
        a = _subset(placement, main, second[main])
        b = _spill_copy_as_primary(placement, only_spill, spill_index[only_spill])
        part = _merge_parts(ids, numbers, main, a, only_spill, b)
        part["guests"] = np.ascontiguousarray(ids[only_spill], np.int64)
        parts.append(part)
    return parts


def _merge_parts(ids, numbers, main, a: Placement, extra, b: Placement) -> dict:
    """Two placements of disjoint points as one part, in input order."""
    if len(extra) == 0:
        return _part(ids[main], numbers[main], a)
    if len(main) == 0:
        return _part(ids[extra], numbers[extra], b)
    order = np.argsort(np.concatenate([main, extra]), kind="stable")
    cat = lambda x, y: None if x is None else np.concatenate([x, y])[order]  # noqa: E731
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    rows = None if a.rows is None else {key: np.concatenate([a.rows[key], b.rows[key]])[order] for key in a.rows}
    merged = Placement(cat(a.leaves, b.leaves), cat(a.codes, b.codes), cat(a.bias, b.bias),
                       inverse[a.spilled].astype(np.int64), a.spill_leaves, a.spill_codes, a.spill_bias, rows)
    return _part(np.concatenate([ids[main], ids[extra]])[order],
                 np.concatenate([numbers[main], numbers[extra]])[order], merged)


def _part(ids: np.ndarray, numbers: np.ndarray, placement: Placement) -> dict:
    """A shard's part: the points' ids and insertion numbers, the engine's upsert
    arguments, and the "guests": points held only for their SOAR copy (their primary leaf
    is on another shard), which the shard holds but does not count as its own."""
    return {"ids": np.ascontiguousarray(ids, np.int64), "numbers": np.ascontiguousarray(numbers, np.int64),
            "upsert": upsert_arguments(placement), "guests": np.empty(0, np.int64)}
