"""Filtered search arguments: allowlist= / denylist= at the API edge, and
compiled filters for many searches.

Each takes either an array of ids (integers) or a boolean mask indexed by id
(mask[id] True = listed), so len(mask) must exceed the largest id in the
index. Ids the index does not hold are ignored: an allowlist often comes from
a permission system that spans more items than one index. A point is
returned only if it is allowed and not denied. The filter is applied inside
the scans (a bitmask the LUT16 and brute-force kernels consult), so k results
come back whenever k allowed points exist.
"""
from __future__ import annotations

import numpy as np


def id_filter(values, name: str):
    """(ids int64 or None, mask uint8 or None) from an allowlist/denylist argument."""
    if values is None:
        return None, None
    arr = values if isinstance(values, np.ndarray) else np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of ids or a 1-D boolean mask, got shape {arr.shape}")
    if arr.dtype == np.bool_:
        return None, np.ascontiguousarray(arr).view(np.uint8)
    if arr.size == 0:
        return np.empty(0, np.int64), None
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integer ids or booleans (a mask over ids), got dtype {arr.dtype}")
    ids = np.ascontiguousarray(arr, dtype=np.int64)
    if ids.min() < 0:
        raise ValueError(f"{name} holds negative id {int(ids.min())}; ids are >= 0")
    return ids, None


class CompiledFilter:
    """An allowlist/denylist turned into a bitmask over the index's points once, for many
    searches: searcher.compile_filter(allowlist=..., denylist=...), then pass it as
    allowlist= to search()/search_batched(). Per call, a plain filter costs a pass over its
    ids (or the mask); a compiled one costs nothing. After the index changes (upsert,
    delete, compact, rebalance) the next search recompiles it on its own."""

    def __init__(self, searcher, kwargs: dict):
        self.searcher = searcher
        self.kwargs = kwargs
        self.handle = None
        self.recompile()

    def recompile(self) -> None:
        self.handle = self.searcher._compile_filter(self.kwargs)


def filter_kwargs(allowlist, denylist) -> dict:
    """Keyword arguments of the C++ scorers' search for these filters."""
    if isinstance(allowlist, CompiledFilter):
        if denylist is not None:
            raise ValueError("a compiled filter already holds its denylist: pass denylist= to compile_filter()")
        return {"compiled": allowlist}
    allow_ids, allow_mask = id_filter(allowlist, "allowlist")
    deny_ids, deny_mask = id_filter(denylist, "denylist")
    return dict(allow_ids=allow_ids, allow_mask=allow_mask, deny_ids=deny_ids, deny_mask=deny_mask)
