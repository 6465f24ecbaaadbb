"""The quantized partitioning index as Python sees it: QuantizedSearcher, over
the engine's index object (csrc/index/partitioned_index.h), which owns the
arrays' checks, the live store, the lock, filters and id translation, and
turns queries and scores into the metric's terms.

Search: the query's best leaves by centroid score (int8 screening, exact
rescoring of the best), an LUT16 scan of their AH codes, SOAR de-duplication,
exact reordering of the best candidates, the top k.

Updates (upsert, delete, compact, rebalance) and filtered search: new points
are placed as a build places them (placement.py); searches in other threads
see each update whole. The searcher's Python state (config, arrays, engine
index, default knobs) is one _State swapped as a whole, so a search never
mixes two.

For the tuner and other tools, a public view of the index's internals:
leaf_order(), leaves_of(), leaf_slots(), ah_candidates() and ah_ranks().
"""
from __future__ import annotations

import dataclasses
import threading

import numpy as np

from .. import _core
from .._validate import as_float_matrix, check_ids, check_k, check_num_threads
from ..config import MAX_INT32, IndexConfig
from ..dense_layout import stored_as
from ..params import SearchParams
from ..searcher import Searcher, checked_k
from .building import build_arrays
from .layout import upsert_arguments
from .maintenance import decode_rows, health_report
from .placement import lift_of, place_in_index
from .reorder_copy import exact_in_bfloat16, stored_dtype, widened


def _filtered(call, filters: dict):
    """call(**filter arguments of the engine): a compiled filter goes in as its bitmask,
    recompiled when an update made it stale (then, after three tries, as its ids)."""
    compiled = filters.get("compiled")
    if compiled is None:
        return call(**filters)
    for _ in range(3):  # an update between recompiling and searching makes it stale again
        try:
            return call(compiled=compiled.handle)
        except _core.StaleFilterError:
            compiled.recompile()
    return call(**compiled.kwargs)


class _State:
    """Everything a search reads, taken together: the config, the arrays, the engine's
    index and the default knobs. A searcher swaps in a new _State as a whole
    (rebalance, set_default_params), so a search that took one never mixes two."""

    __slots__ = ("config", "arrays", "index", "default_knobs")

    def __init__(self, config: IndexConfig, arrays: dict, index, default_knobs=None):
        self.config, self.arrays, self.index = config, arrays, index
        if default_knobs is None:
            k = config.num_neighbors
            default_knobs = (*self.knobs(k, None, None), k)
        self.default_knobs = default_knobs

    def knobs(self, k: int, leaves_to_search, pre_reorder_num_neighbors) -> tuple[int, int]:
        """(leaves, pre_reorder) of a search for k results, checked against this state."""
        tree = self.config.tree
        if leaves_to_search is None:
            leaves = tree.num_leaves_to_search if tree is not None else 1
        else:
            leaves = check_k(leaves_to_search, self.index.num_leaves, "leaves_to_search")
        reorder = self.config.reorder
        if reorder is None:
            if pre_reorder_num_neighbors is not None:
                raise ValueError("pre_reorder_num_neighbors needs an index built with reorder()")
            return leaves, k
        if pre_reorder_num_neighbors is None:
            return leaves, max(k, reorder.pre_reorder_num_neighbors)
        # Beyond the points held it means all of them (the engine sizes its buffers by those).
        pre = check_k(pre_reorder_num_neighbors, MAX_INT32, "pre_reorder_num_neighbors")
        if pre < k:
            raise ValueError(f"pre_reorder_num_neighbors ({pre}) must be >= final_num_neighbors ({k})")
        return leaves, pre

    def with_defaults(self, params: SearchParams, size: int) -> "_State":
        """This state with `params` as the knobs of a search that passes none (and in the
        config a save writes); size: the points held, which bound k."""
        if not isinstance(params, SearchParams):
            raise TypeError(f"params must be an annlib.SearchParams, got {type(params).__name__}")
        if self.config.tree is None:
            raise ValueError("this index has no tree(): leaves_to_search has nothing to set")
        k = check_k(params.final_num_neighbors, size, "final_num_neighbors")
        leaves, pre = self.knobs(k, params.leaves_to_search, params.pre_reorder_num_neighbors)
        tree = dataclasses.replace(self.config.tree, num_leaves_to_search=leaves)
        reorder = (dataclasses.replace(self.config.reorder, pre_reorder_num_neighbors=pre)
                   if self.config.reorder is not None else None)
        config = dataclasses.replace(self.config, num_neighbors=k, tree=tree, reorder=reorder)
        return _State(config, self.arrays, self.index, (leaves, pre, k))

    def _search(self, queries, k, num_threads, leaves_to_search, pre_reorder_num_neighbors, filters):
        leaves, pre = self.knobs(k, leaves_to_search, pre_reorder_num_neighbors)
        return _filtered(lambda **f: self.index.search(queries, leaves, pre, k, num_threads, **f), filters or {})

    def size(self) -> int:
        return self.index.size()


class QuantizedSearcher(Searcher):
    """Leaves -> AH (LUT16) scan -> optional exact reorder; see the module docstring."""

    def __init__(self, config: IndexConfig, arrays: dict, *, simd_level: str = "",
                 format_version: int = _core.FORMAT_VERSION):
        if config.tree is not None and config.tree.soar_lambda == "auto":
            raise ValueError("soar_lambda='auto' is for a build to decide; an index's config holds the "
                             "decision (a number or None)")
        reorder_dtype = stored_dtype(config, arrays)  # a float32 reorder may be held in bfloat16
        index = _core.PartitionedIndex(arrays, format_version, config.distance_measure, reorder_dtype,
                                       simd_level)
        tree = config.tree
        num_leaves = tree.num_leaves if tree is not None else 1
        if num_leaves != index.num_leaves or (tree is not None and tree.num_leaves_to_search > index.num_leaves):
            raise ValueError(f"the config asks for {num_leaves} leaves"
                             + (f" ({tree.num_leaves_to_search} searched)" if tree is not None else "")
                             + f" but the index has {index.num_leaves}")
        self.dim = index.dim
        lift_of(config, arrays, index.num_leaves)  # checked at load; placement reads it at each upsert
        self._format_version = format_version
        self._state = _State(config, arrays, index)
        self._changed = False  # updated since the arrays were built or loaded
        self._update_lock = threading.Lock()  # one update (or rebalance) at a time

    @property
    def config(self) -> IndexConfig:
        return self._state.config

    def _snapshot(self) -> _State:
        return self._state

    def search(self, q, final_num_neighbors=None, pre_reorder_num_neighbors=None, leaves_to_search=None, *,
               allowlist=None, denylist=None, num_threads: int = 1):
        """Nearest neighbors of one query vector (shape (d,) or (1, d)); allowlist/denylist
        restrict the ids that may come back (annlib.filters)."""
        if (type(q) is np.ndarray and q.dtype == np.float32 and q.ndim == 1 and q.flags.c_contiguous
                and num_threads == 1 and allowlist is None and denylist is None and q.shape[0] == self.dim):
            # Latency path: straight to the engine, which checks the values itself.
            state = self._state
            if final_num_neighbors is None and pre_reorder_num_neighbors is None and leaves_to_search is None:
                leaves, pre, k = state.default_knobs
                if k > state.size():  # after deletes
                    checked_k(state, None)
            else:
                k = checked_k(state, final_num_neighbors)
                leaves, pre = state.knobs(k, leaves_to_search, pre_reorder_num_neighbors)
            return state.index.search(q, leaves, pre, k)
        return super().search(q, final_num_neighbors, pre_reorder_num_neighbors, leaves_to_search,
                              allowlist=allowlist, denylist=denylist, num_threads=num_threads)

    def with_simd_level(self, level: str) -> "QuantizedSearcher":
        """The same index (as it is now), searched with the kernels of another supported SIMD level."""
        with self._update_lock:
            copy = QuantizedSearcher(self.config, self._arrays(), simd_level=level,
                                     format_version=self._format_version)
            copy._state = _State(self.config, copy._state.arrays, copy._state.index, self._state.default_knobs)
            return copy

    @property
    def simd_level(self) -> str:
        return self._state.index.simd_level

    @property
    def search_defaults(self) -> dict:
        leaves, pre, k = self._state.default_knobs
        return {"final_num_neighbors": k, "leaves_to_search": leaves,
                "pre_reorder_num_neighbors": pre if self.config.reorder is not None else 0}

    @property
    def num_leaves(self) -> int:
        return self._state.index.num_leaves

    def _description(self) -> list[str]:
        config = self.config
        leaves, pre, k = self._state.default_knobs
        parts = [f"quantized {self.num_leaves} leaves (search {leaves})"]
        if config.tree is not None and config.tree.soar_lambda is not None:
            parts.append(f"SOAR lambda {config.tree.soar_lambda:g}")
        parts.append(f"AH {config.score_ah.dimensions_per_block} dims/block")
        if config.reorder is not None:
            stored = stored_dtype(config, self._state.arrays)
            held = f" (held in {stored}, exact)" if stored != config.reorder.dtype else ""
            parts.append(f"reorder {config.reorder.dtype}{held} top {pre}")
        return [*parts, *super()._description(), f"k {k}", f"simd {self.simd_level}"]

    def size(self) -> int:
        """Points in the index now (after upserts and deletes)."""
        return self._state.size()

    # ---- updates ---------------------------------------------------------------

    def upsert(self, ids, vectors, *, num_threads: int = 0) -> None:
        """Adds points, or replaces the points with these ids. Each goes to its nearest leaf
        (and its SOAR leaf), encoded with the index's codebooks, exactly as a build would
        place it. Searches in other threads see the index before or after the whole call."""
        checked = self._upsert_arguments(ids, vectors, num_threads)
        if checked is None:
            return
        ids, x, num_threads = checked
        with self._update_lock:
            if self._rows_held_narrower() and not exact_in_bfloat16(x):
                self._widen_rows()
            state = self._state
            placement = place_in_index(state.config, state.arrays, x, num_threads,
                                       rows_dtype=stored_dtype(state.config, state.arrays) or None)
            state.index.upsert(ids, **upsert_arguments(placement))
            self._changed = True

    def upsert_placed(self, ids: np.ndarray, arguments: dict) -> None:
        """Adds or replaces points placed elsewhere with this index's centers and codebooks:
        `arguments` are layout.upsert_arguments(placement) (a sharded index's coordinator
        places points once and sends each shard its copies)."""
        ids = check_ids(ids)
        with self._update_lock:
            rows = arguments.get("rows")
            if rows is not None and self.config.reorder is not None and self.config.reorder.dtype == "float32":
                incoming = stored_as(np.asarray(rows["rows"]))
                if self._rows_held_narrower() and incoming == "float32":
                    self._widen_rows()  # placed elsewhere in float32: exact only in a float32 copy
                elif not self._rows_held_narrower() and incoming == "bfloat16":
                    arguments = dict(arguments, rows=widened(rows))  # placed for a copy held narrower
            self._state.index.upsert(ids, **arguments)
            self._changed = True

    def _rows_held_narrower(self) -> bool:
        """Whether a float32 reorder copy is held in bfloat16 (reorder_copy.py)."""
        state = self._state
        return state.config.reorder is not None and stored_dtype(state.config, state.arrays) != state.config.reorder.dtype

    def _widen_rows(self) -> None:
        """Swaps in the same index with its bfloat16-held float32 reorder copy widened to
        float32 (exact), before points bfloat16 cannot hold arrive. Under the update lock;
        searches keep running on the old one meanwhile."""
        fresh = QuantizedSearcher(self.config, widened(self._arrays()), simd_level=self.simd_level,
                                  format_version=_core.FORMAT_VERSION)
        self._format_version = fresh._format_version
        self._state = fresh._state
        self._changed = False

    def delete(self, ids) -> None:
        """Removes points by id, all or none: an id the index does not hold raises ValueError
        and nothing is deleted. Deleted points are never returned from then on; their space
        is reclaimed by compact(), which also runs on its own once deleted points make up a
        quarter of the storage."""
        ids = check_ids(ids)
        if len(ids) == 0:
            return
        with self._update_lock:
            self._state.index.remove(ids)  # checks every id before it deletes any
            self._changed = True

    def save(self, path, *, extra_arrays: dict | None = None) -> None:
        """Writes the index as it is now (compacted) to directory `path`, atomically; updates
        wait until it is written (extra_arrays: see Searcher.save)."""
        with self._update_lock:
            super().save(path, extra_arrays=extra_arrays)

    def _contains(self, ids: np.ndarray) -> np.ndarray:
        return self._state.index.contains(ids)

    def compact(self) -> None:
        """Reclaims the space of deleted points now."""
        with self._update_lock:
            self._state.index.compact()

    def health(self) -> dict:
        """Size, deletes awaiting compaction, the share of points added since the partitions
        and codebooks were trained, and how uneven the leaves have become (max/mean and
        coefficient of variation of live points per leaf, beside the value at training);
        rebalance_recommended says when rebalance() should pay off."""
        state = self._state
        baseline = state.arrays.get("leaf_cv_at_training")
        return health_report(state.index.stats(), float(np.asarray(baseline)[0]) if baseline is not None else None)

    def rebalance(self, num_leaves: int | None = None, *, num_threads: int = 0, progress: bool = False) -> None:
        """Retrains the partitions and codebooks on the points the index holds now (read back
        from its reorder copy) and swaps the new index in; searches keep running on the old
        one meanwhile. num_leaves changes the leaf count (default: the build's)."""
        if self.config.reorder is None:
            raise ValueError("rebalance() reads the vectors back from the reorder copy; this index was built "
                             "without reorder(), so rebuild it from the original data instead")
        num_threads = check_num_threads(num_threads)
        with self._update_lock:
            arrays = self._arrays()
            n = self.size()
            ids = np.asarray(arrays["ids"], dtype=np.int64) if "ids" in arrays else None
            x = decode_rows(arrays, stored_dtype(self.config, arrays), n, self.dim)
            config = self.config
            if num_leaves is not None:
                if config.tree is None:
                    raise ValueError("this index has no tree(): num_leaves has nothing to set")
                leaves = check_k(num_leaves, n, "num_leaves")
                config = dataclasses.replace(config, tree=dataclasses.replace(
                    config.tree, num_leaves=leaves,
                    num_leaves_to_search=min(config.tree.num_leaves_to_search, leaves)))
            config, arrays = build_arrays(config, x, num_threads, progress, ids=ids)
            fresh = QuantizedSearcher(config, arrays, simd_level=self.simd_level, format_version=_core.FORMAT_VERSION)
            self._format_version = fresh._format_version
            self._state = fresh._state  # one swap
            self._changed = False

    def _compile_filter(self, kwargs):
        return self._state.index.compile_filter(**kwargs)

    def stage_times(self, queries, final_num_neighbors=None, *, leaves_to_search=None,
                    pre_reorder_num_neighbors=None) -> dict:
        """Seconds spent per stage (centroid scoring, LUT build, scan, reorder,
        total) searching `queries` one by one on one thread."""
        queries = as_float_matrix(queries, "queries", dim=self.dim, check_values=False)
        state = self._state
        k = checked_k(state, final_num_neighbors)
        leaves, pre = state.knobs(k, leaves_to_search, pre_reorder_num_neighbors)
        totals = dict.fromkeys(("centroids", "lut", "scan", "reorder", "total"), 0.0)
        for q in queries:
            *_, times = state.index.search(q, leaves, pre, k, 1, True)
            for key in totals:
                totals[key] += times[key]
        return totals

    def set_default_params(self, params: SearchParams) -> None:
        """Makes `params` (a SearchParams, e.g. annlib.tune(...).params) the knobs used when a
        search passes none; save() keeps them in the config."""
        with self._update_lock:
            self._state = self._state.with_defaults(params, self._state.size())

    # ---- a view of the internals (the tuner's) ------------------------------------

    def leaf_order(self, queries, *, num_threads: int = 0) -> np.ndarray:
        """Every leaf by its exact centroid score for each query, best first: int32
        [nq, num_leaves] (queries as search() takes them)."""
        queries = as_float_matrix(queries, "queries", dim=self.dim, check_values=False)
        return self._state.index.leaf_order(queries, check_num_threads(num_threads))

    def leaves_of(self, ids) -> np.ndarray:
        """The two leaves holding each point: int32 [len(ids), 2], -1 where a point has no
        second copy or is not held. Their order is not promised: a built index lists them
        in leaf order, a point placed by upsert its primary leaf first."""
        return self._state.index.leaves_of(np.ascontiguousarray(ids, dtype=np.int64).ravel())

    def leaf_slots(self) -> np.ndarray:
        """Code slots per leaf now, padding included: int64 [num_leaves] (what a scan reads)."""
        return self._state.index.leaf_slots()

    def ids(self) -> np.ndarray:
        """The ids the index holds now: int64 [size()] (in storage order)."""
        return self._state.index.ids()

    def vectors(self, ids) -> np.ndarray:
        """The vectors of these ids as the reorder copy holds them: float32 [len(ids), d]
        (exact for a float32 copy; unit length for cosine)."""
        if self.config.reorder is None:
            raise ValueError("this index keeps no reorder copy to read vectors from")
        return self._state.index.vectors(np.ascontiguousarray(ids, dtype=np.int64).ravel())

    def ah_candidates(self, queries, leaves_to_search: int, count: int, *, num_threads: int = 0):
        """(ids int64 [nq, count], approximate scores) of the best `count` AH candidates of
        exactly the best `leaves_to_search` leaves, best first, before any reordering (-1
        padding): the scan stage of a search, for the tuner's recall model."""
        queries = as_float_matrix(queries, "queries", dim=self.dim, check_values=False)
        state = self._state
        count = check_k(count, max(1, state.size()), "count")
        leaves = check_k(leaves_to_search, state.index.num_leaves, "leaves_to_search")
        return state.index.search(queries, leaves, count, count, check_num_threads(num_threads), reorder=False)

    def ah_ranks(self, queries, leaves_grid, count: int, wanted, *, num_threads: int = 0) -> np.ndarray:
        """int32 [G, nq, m]: for each leaf count leaves_grid[g] (rising), the position of
        each wanted id (int64 [nq, m]) in the list ah_candidates(queries, leaves_grid[g],
        count) gives, or `count` where it is not there, from one scan of each query's best
        leaves_grid[-1] leaves instead of one search per leaf count."""
        queries = as_float_matrix(queries, "queries", dim=self.dim, check_values=False)
        state = self._state
        count = check_k(count, max(1, state.size()), "count")
        grid = np.asarray(leaves_grid).ravel()
        if grid.size and not np.issubdtype(grid.dtype, np.integer):
            raise TypeError(f"leaves_grid must hold integer leaf counts, got {grid.dtype}")
        grid = grid.astype(np.int64)
        if grid.size == 0 or grid[0] < 1 or grid[-1] > state.index.num_leaves or np.any(np.diff(grid) <= 0):
            raise ValueError(f"leaves_grid must rise strictly within [1, {state.index.num_leaves}]")
        wanted = np.ascontiguousarray(wanted, dtype=np.int64)
        if wanted.ndim != 2 or wanted.shape[0] != len(queries) or wanted.shape[1] < 1:
            raise ValueError(f"wanted must be ids of shape ({len(queries)}, m >= 1), got {wanted.shape}")
        return state.index.ah_ranks_over_grid(queries, grid.astype(np.int32), count, wanted,
                                              check_num_threads(num_threads))

    def choose_leaves(self, queries, leaves_to_search: int, *, num_threads: int = 0):
        """(leaves int32 [nq, leaves_to_search], their exact centroid scores float32), best
        first: the leaves a search scans for each query (the same choice, bit for bit)."""
        queries = as_float_matrix(queries, "queries", dim=self.dim, check_values=False)
        leaves = check_k(leaves_to_search, self._state.index.num_leaves, "leaves_to_search")
        return self._state.index.choose_leaves(queries, leaves, check_num_threads(num_threads))

    def shard_candidates(self, queries, probe_leaves, probe_scores, wanted: int, *, exact: bool = False,
                         top_k: int = 0, num_threads: int = 0, allowlist=None, denylist=None):
        """A shard's answer to a sharded search (annlib.distributed): per query, the `wanted`
        best distinct candidates of the given leaves (choose_leaves' output, leaf -1 skipped)
        by AH score, with their AH and reordered raw scores; exact=True: the exact best over
        every allowed point instead (probes None). Returns (ids int64 [nq, w], approx float32,
        reordered float32, points allowed), w = min(wanted, size()) or 1; _core.merge_candidates
        merges shards' answers. top_k > 0: only the best min(top_k, w) of those candidates by
        reordered score, best first, as one index's search returns them (approx None): the
        answer to a query whose leaves all lie on this shard."""
        queries = as_float_matrix(queries, "queries", dim=self.dim, check_values=False)
        wanted = check_k(wanted, MAX_INT32, "wanted")
        if top_k:
            top_k = check_k(top_k, MAX_INT32, "top_k")
        filters = self._filter_args(allowlist, denylist)
        num_threads = check_num_threads(num_threads)
        if not exact:
            probe_leaves = np.ascontiguousarray(probe_leaves, dtype=np.int32)
            probe_scores = np.ascontiguousarray(probe_scores, dtype=np.float32)
        index = self._state.index
        return _filtered(lambda **f: index.search_candidates(queries, probe_leaves, probe_scores, wanted, exact,
                                                             top_k, num_threads, **f), filters)

    def allowed_count(self, allowlist=None, denylist=None) -> int:
        """Points a filter (ids, masks or a compiled filter) allows (all points held without one)."""
        filters = self._filter_args(allowlist, denylist)
        return int(_filtered(lambda **f: self._state.index.allowed_count(**f), filters))

    def total_slots(self) -> int:
        """Code slots over all leaves, padding included (what a scan of every leaf reads)."""
        return int(self._state.index.total_slots())

    def _arrays(self) -> dict:
        """The arrays a save writes: the build's, with the updated ones exported (compacted)."""
        state = self._state
        if not self._changed:
            return dict(state.arrays)
        arrays = dict(state.arrays, **state.index.export())
        meta = np.asarray(arrays["meta"])
        arrays["meta"] = np.array([len(arrays["ids"]), *meta[1:]], np.int64)
        return arrays
