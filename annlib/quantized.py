"""The quantized partitioning index (the ScaNN pipeline): k-means leaves,
anisotropic 4-bit PQ of the residuals scanned with LUT16, exact reordering.

Build:
  1. k-means centers; every point goes to its nearest center's leaf and, with
     SOAR, to one more leaf (csrc/quantization/soar.h); a spilled point has a
     slot and a code in each of its two leaves.
  2. Squared L2 goes through the L2 -> MIPS reduction (ALGORITHMS.md
     section 4): x' = [x, -|x|^2/2], q' = [q, 1]. The extra coordinate is not
     quantized but kept as a per-slot float the LUT16 kernel adds, computed
     from the reconstructed point (ah.l2_point_term) so the scan scores
     -|q - x~|^2/2; the reorder rows keep the exact |x|^2.
  3. Residuals x - c(leaf) are quantized with per-block codebooks under the
     anisotropic loss (the exact extra coordinate has no residual to quantize).
  4. Codes are stored leaf after leaf, each leaf padded to 32 points (the
     LUT16 group), with a slot -> datapoint id map.
  5. Optional row copy (float32, bfloat16 or int8) for exact reordering.
  6. Centroids twice: int8 panels that every query scans to screen the
     leaves (a quarter of float32's bytes), and float32 rows that rescore the
     best screened leaves exactly.
Search runs in C++ (csrc/search/partitioned_search.cpp).

Updates (upsert, delete, compact, rebalance) and filtered search: see
annlib/updates.py and annlib/filters.py; the C++ side keeps the changes
(csrc/search/partitioned_store.h) behind a reader-writer lock, so searches in
other threads see each update whole.
"""
from __future__ import annotations

import threading

import numpy as np
from tqdm.auto import tqdm

from . import _core, ah
from .config import MAX_INT32, IndexConfig
from .partitioning import assign, kmeans
from ._validate import as_float_matrix, check_k, check_num_threads, normalize_rows
from .searcher import Searcher, check_finite, default_or_checked_k, read_meta
from .updates import check_ids, decode_rows, health_report, leaf_balance, prepare_points

GROUP = 32  # LUT16 points per group (kernels/lut16.h)
# Float arrays checked for NaN/inf on build and load (all but the big ones).
_FINITE_ARRAYS = ("centroids", "centroid_rows", "centroid_row_bias", "lut_centers", "slot_bias", "row_bias",
                  "row_scale", "row_offset", "leaf_cv_at_training")
_FINITE_PANEL_ARRAYS = ("centroid_bias", "centroid_scale", "centroid_offset", "centroid_scaled_sums")


def build_quantized(config: IndexConfig, database: np.ndarray, num_threads: int = 0,
                    progress: bool = True, ids: np.ndarray | None = None) -> "QuantizedSearcher":
    measure = config.distance_measure
    squared_l2 = measure == "squared_l2"
    x = normalize_rows(database, "database") if measure == "cosine" else database
    n, d = x.shape
    tree, ahc = config.tree, config.score_ah
    dpb = ahc.dimensions_per_block

    # 1. Partitioning (without a tree: one leaf centered at the origin).
    if tree is not None:
        centroids = kmeans(x, tree.num_leaves, iterations=tree.iterations,
                           training_sample_size=tree.training_sample_size, init=tree.init,
                           spherical=tree.spherical, seed=tree.seed, num_threads=num_threads, progress=progress)
        labels, _ = assign(x, centroids, num_threads=num_threads)
    else:
        centroids = np.zeros((1, d), np.float32)
        labels = np.zeros(n, np.int64)
    num_leaves = len(centroids)
    seed = tree.seed if tree is not None else 0

    # 2. SOAR: a second leaf per point, unless it is the primary one again.
    point_ids = np.arange(n, dtype=np.int64)
    slot_labels = labels
    if tree is not None and tree.soar_lambda is not None:
        secondary = _core.soar_assign(x, centroids, np.ascontiguousarray(labels, dtype=np.int64),
                                      float(tree.soar_lambda), num_threads)
        spilled = np.flatnonzero(secondary != labels)
        point_ids = np.concatenate([point_ids, spilled])
        slot_labels = np.concatenate([labels, secondary[spilled].astype(np.int64)])
    counts = np.bincount(slot_labels, minlength=num_leaves)

    # 4. Anisotropic PQ of the residuals: codebooks from a sample of primary
    # residuals, then every stored copy encoded against its own leaf center.
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, min(n, ahc.training_sample_size), replace=False))
    codebooks = ah.train_codebooks(x[sample] - centroids[labels[sample]], dpb, iterations=ahc.training_iterations,
                                   training_sample_size=len(sample), seed=seed, num_threads=num_threads,
                                   progress=progress)
    codes = _encode_copies(x, centroids, point_ids, slot_labels, codebooks, ahc, num_threads, progress)

    # Squared L2 as inner product: <q, x> - |x|^2/2 ranks like -|q - x|^2. The
    # per-point term is a float per slot added in the scan (not quantized),
    # the leaf's |c|^2/2 folded into it (ah.l2_point_term says which norm and why).
    point_term = None
    if squared_l2:
        point_term = ah.l2_point_term(centroids, slot_labels, codes, codebooks)

    # 5. Leaf-major slots, each leaf padded to whole groups of 32.
    total = len(point_ids)
    padded = (counts + GROUP - 1) // GROUP * GROUP
    leaf_starts = np.zeros(num_leaves + 1, np.int64)
    np.cumsum(padded, out=leaf_starts[1:])
    order = np.argsort(slot_labels, kind="stable")
    rank_in_leaf = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    slots = leaf_starts[slot_labels[order]] + rank_in_leaf
    slot_ids = np.full(leaf_starts[-1], -1, np.int32)
    slot_ids[slots] = point_ids[order]
    slot_codes = np.zeros((leaf_starts[-1], codes.shape[1]), np.uint8)
    slot_codes[slots] = codes[order]
    del codes
    slot_bias = None
    if point_term is not None:
        slot_bias = np.zeros(leaf_starts[-1], np.float32)
        slot_bias[slots] = point_term[order]

    # Leaves are screened from int8 panels (a quarter of the bytes every query
    # streams) and the best rescored from float32 rows: exact leaf scores.
    centroid_packed = _core.pack_dense(centroids, "int8", squared_l2, num_threads)
    centroid_rows = _core.pack_rows(centroids, "float32", squared_l2, num_threads)
    arrays = {
        "meta": np.array([n, d, slot_codes.shape[1], dpb], np.int64),
        "centroids": centroids,
        "centroid_panels": centroid_packed["panels"],
        **{f"centroid_{key}": centroid_packed[key] for key in ("bias", "scale", "offset", "sums", "scaled_sums")},
        "centroid_rows": centroid_rows["rows"].ravel(),
        "centroid_row_bias": centroid_rows["row_bias"],
        "leaf_starts": leaf_starts,
        "slot_ids": slot_ids,
        "codes": _core.pack_lut16_codes(slot_codes).ravel(),
        # [b][t][16]: the LUT build's inner loop runs over the 16 centers.
        "lut_centers": np.ascontiguousarray(codebooks.transpose(0, 2, 1)).ravel(),
    }
    if slot_bias is not None:
        arrays["slot_bias"] = slot_bias
    if ids is not None:
        arrays["ids"] = ids
    # health() compares the leaves' spread with this one.
    arrays["leaf_cv_at_training"] = np.array([leaf_balance(counts)["leaf_size_cv"]])
    if config.reorder is not None:
        arrays.update(_core.pack_rows(x, config.reorder.dtype, squared_l2, num_threads))
    return QuantizedSearcher(config, arrays)


def _encode_copies(x, centroids, point_ids, slot_labels, codebooks, ahc, num_threads, progress):
    """AH codes of x[point_ids] - centroids[slot_labels], in chunks (bounded
    memory, a progress bar, and Ctrl-C between chunks)."""
    chunk = 1 << 16
    codes = np.empty((len(point_ids), codebooks.shape[0]), np.uint8)
    for i in tqdm(range(0, len(point_ids), chunk), desc="AH encode", unit="chunk", disable=not progress,
                  leave=False):
        ids = point_ids[i:i + chunk]
        originals = x[ids]
        residuals = originals - centroids[slot_labels[i:i + chunk]]
        codes[i:i + chunk] = ah.encode(residuals, originals, codebooks,
                                       threshold=ahc.anisotropic_quantization_threshold, eta_dim=x.shape[1],
                                       rounds=ahc.encoding_rounds, num_threads=num_threads)
    return codes


class _State:
    """Everything a search reads, taken together: the config, the arrays, the C++ scorer
    and the default knobs. A searcher swaps in a new _State as a whole (rebalance,
    set_default_params), so a search that took one never mixes two."""

    __slots__ = ("config", "arrays", "scorer", "default_knobs")

    def __init__(self, config: IndexConfig, arrays: dict, scorer, default_knobs=None):
        self.config, self.arrays, self.scorer = config, arrays, scorer
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
            leaves = check_k(leaves_to_search, self.scorer.num_leaves, "leaves_to_search")
        reorder = self.config.reorder
        if reorder is None:
            if pre_reorder_num_neighbors is not None:
                raise ValueError("pre_reorder_num_neighbors needs an index built with reorder()")
            return leaves, k
        if pre_reorder_num_neighbors is None:
            return leaves, max(k, reorder.pre_reorder_num_neighbors)
        # Beyond the points held it means all of them (the C++ core sizes its buffers by those).
        pre = check_k(pre_reorder_num_neighbors, MAX_INT32, "pre_reorder_num_neighbors")
        if pre < k:
            raise ValueError(f"pre_reorder_num_neighbors ({pre}) must be >= final_num_neighbors ({k})")
        return leaves, pre

    def _search_raw(self, queries, k, num_threads, leaves_to_search, pre_reorder_num_neighbors, filters):
        leaves, pre = self.knobs(k, leaves_to_search, pre_reorder_num_neighbors)
        compiled = (filters or {}).get("compiled")
        if compiled is None:
            return self.scorer.search(queries, leaves, pre, k, num_threads, **(filters or {}))
        for _ in range(3):  # an update between recompiling and searching makes it stale again
            try:
                return self.scorer.search(queries, leaves, pre, k, num_threads, compiled=compiled.handle)
            except _core.StaleFilterError:
                compiled.recompile()
        return self.scorer.search(queries, leaves, pre, k, num_threads, **compiled.kwargs)

    def size(self) -> int:
        return self.scorer.size()


class QuantizedSearcher(Searcher):
    """Leaves -> AH (LUT16) scan -> optional exact reorder; see the module docstring."""

    def __init__(self, config: IndexConfig, arrays: dict, *, simd_level: str = ""):
        n, self.dim, self._num_blocks, dpb = read_meta(arrays, 4)
        check_finite(arrays, _FINITE_ARRAYS)
        check_finite(arrays, _FINITE_PANEL_ARRAYS, len(arrays["leaf_starts"]) - 1)
        reorder_dtype = config.reorder.dtype if config.reorder is not None else ""
        overretrieve = config.tree.overretrieve_factor if config.tree is not None else 1.0
        scorer = _core.PartitionedScorer(arrays, n, self.dim, self._num_blocks, dpb, reorder_dtype,
                                         simd_level, overretrieve)
        tree = config.tree
        if tree is not None and (tree.num_leaves != scorer.num_leaves or tree.num_leaves_to_search > scorer.num_leaves):
            raise ValueError(f"the config asks for {tree.num_leaves} leaves ({tree.num_leaves_to_search} searched) "
                             f"but the index has {scorer.num_leaves}")
        self._state = _State(config, arrays, scorer)
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
                and num_threads == 1 and allowlist is None and denylist is None):
            # Latency path: the query checks and conversions happen in C++ (same messages).
            if q.shape[0] != self.dim:
                raise ValueError(f"query has dimension {q.shape[0]} but the index was built with dimension {self.dim}")
            state = self._state
            if final_num_neighbors is None and pre_reorder_num_neighbors is None and leaves_to_search is None:
                knobs = state.default_knobs
            else:
                k = default_or_checked_k(state, final_num_neighbors)
                knobs = (*state.knobs(k, leaves_to_search, pre_reorder_num_neighbors), k)
            return state.scorer.search_one(q, *knobs, self.distance_measure)
        return super().search(q, final_num_neighbors, pre_reorder_num_neighbors, leaves_to_search,
                              allowlist=allowlist, denylist=denylist, num_threads=num_threads)

    def with_simd_level(self, level: str) -> "QuantizedSearcher":
        """The same index (as it is now), searched with the kernels of another supported SIMD level."""
        with self._update_lock:
            return QuantizedSearcher(self.config, self._arrays(), simd_level=level)

    @property
    def simd_level(self) -> str:
        return self._state.scorer.simd_level

    @property
    def num_leaves(self) -> int:
        return self._state.scorer.num_leaves

    def size(self) -> int:
        """Points in the index now (after upserts and deletes)."""
        return self._state.size()

    # ---- updates (annlib/updates.py) ----------------------------------------

    def upsert(self, ids, vectors, *, num_threads: int = 0) -> None:
        """Adds points, or replaces the points with these ids. Each goes to its nearest leaf
        (and its SOAR leaf), encoded with the index's codebooks, exactly as a build would
        place it. Searches in other threads see the index before or after the whole call."""
        ids = check_ids(ids)
        x = as_float_matrix(vectors, "vectors", dim=self.dim)
        if len(x) != len(ids):
            raise ValueError(f"ids has {len(ids)} entries but vectors has {len(x)} rows")
        if len(ids) == 0:
            return
        if self.distance_measure == "cosine":
            x = normalize_rows(x, "vectors")
        num_threads = check_num_threads(num_threads)
        with self._update_lock:
            state = self._state
            state.scorer.upsert(ids, **prepare_points(state.config, state.arrays, self._num_blocks, x, num_threads))
            self._changed = True

    def delete(self, ids) -> None:
        """Removes points by id, all or none: an id the index does not hold raises ValueError
        and nothing is deleted. Deleted points are never returned from then on; their space
        is reclaimed by compact(), which also runs on its own once deleted points make up a
        quarter of the storage."""
        ids = check_ids(ids)
        if len(ids) == 0:
            return
        with self._update_lock:
            self._state.scorer.remove(ids)  # checks every id before it deletes any
            self._changed = True

    def save(self, path) -> None:
        """Writes the index as it is now (compacted) to directory `path`, atomically; updates
        wait until it is written."""
        with self._update_lock:
            super().save(path)

    def contains(self, ids) -> np.ndarray:
        """Whether each id is in the index (bool array)."""
        return self._state.scorer.contains(check_ids(ids))

    def compact(self) -> None:
        """Reclaims the space of deleted points now."""
        with self._update_lock:
            self._state.scorer.compact()

    def health(self) -> dict:
        """Size, deletes awaiting compaction, the share of points added since the partitions
        and codebooks were trained, and how uneven the leaves have become (max/mean and
        coefficient of variation of live points per leaf, beside the value at training);
        rebalance_recommended says when rebalance() should pay off."""
        state = self._state
        baseline = state.arrays.get("leaf_cv_at_training")
        return health_report(state.scorer.stats(), float(np.asarray(baseline)[0]) if baseline is not None else None)

    def rebalance(self, num_leaves: int | None = None, *, num_threads: int = 0, progress: bool = False) -> None:
        """Retrains the partitions and codebooks on the points the index holds now (read back
        from its reorder copy) and swaps the new index in; searches keep running on the old
        one meanwhile. num_leaves changes the leaf count (default: the build's)."""
        import dataclasses

        if self.config.reorder is None:
            raise ValueError("rebalance() reads the vectors back from the reorder copy; this index was built "
                             "without reorder(), so rebuild it from the original data instead")
        num_threads = check_num_threads(num_threads)
        with self._update_lock:
            arrays = self._arrays()
            n = self.size()
            ids = np.asarray(arrays["ids"], dtype=np.int64) if "ids" in arrays else None
            x = decode_rows(arrays, self.config.reorder.dtype, n, self.dim)
            config = self.config
            if num_leaves is not None:
                if config.tree is None:
                    raise ValueError("this index has no tree(): num_leaves has nothing to set")
                leaves = check_k(num_leaves, n, "num_leaves")
                config = dataclasses.replace(config, tree=dataclasses.replace(
                    config.tree, num_leaves=leaves,
                    num_leaves_to_search=min(config.tree.num_leaves_to_search, leaves)))
            self._state = build_quantized(config, x, num_threads, progress, ids=ids)._state  # one swap
            self._changed = False

    def _compile_filter(self, kwargs):
        return self._state.scorer.compile_filter(**kwargs)

    def stage_times(self, queries, final_num_neighbors=None, *, leaves_to_search=None,
                    pre_reorder_num_neighbors=None) -> dict:
        """Seconds spent per stage (centroid scoring, LUT build, scan, reorder,
        total) searching `queries` one by one on one thread."""
        queries = as_float_matrix(queries, "queries", dim=self.dim)
        if self.distance_measure == "cosine":
            queries = normalize_rows(queries, "query")
        state = self._state
        k = default_or_checked_k(state, final_num_neighbors)
        leaves, pre = state.knobs(k, leaves_to_search, pre_reorder_num_neighbors)
        totals = dict.fromkeys(("centroids", "lut", "scan", "reorder", "total"), 0.0)
        for q in queries:
            *_, times = state.scorer.search(q[None, :], leaves, pre, k, 1, True)
            for key in totals:
                totals[key] += times[key]
        return totals

    def set_default_params(self, params) -> None:
        """Makes `params` (a SearchParams, e.g. annlib.tune(...).params) the knobs used when a
        search passes none; save() keeps them in the config."""
        import dataclasses

        from .tuning import SearchParams

        if not isinstance(params, SearchParams):
            raise TypeError(f"params must be an annlib.SearchParams, got {type(params).__name__}")
        with self._update_lock:
            state = self._state
            if state.config.tree is None:
                raise ValueError("this index has no tree(): leaves_to_search has nothing to set")
            k = check_k(params.final_num_neighbors, state.size(), "final_num_neighbors")
            leaves, pre = state.knobs(k, params.leaves_to_search, params.pre_reorder_num_neighbors)
            tree = dataclasses.replace(state.config.tree, num_leaves_to_search=leaves)
            reorder = (dataclasses.replace(state.config.reorder, pre_reorder_num_neighbors=pre)
                       if state.config.reorder is not None else None)
            config = dataclasses.replace(state.config, num_neighbors=k, tree=tree, reorder=reorder)
            self._state = _State(config, state.arrays, state.scorer, (leaves, pre, k))

    def _ah_candidates(self, queries: np.ndarray, leaves: int, count: int, num_threads: int = 0) -> np.ndarray:
        """Rows [nq, count] of the best AH candidates over the best `leaves` leaves, best first, before
        any reordering (the tuner's view of the scan stage); queries already validated."""
        state = self._state
        count = min(count, state.size())
        return state.scorer.search(queries, leaves, count, count, num_threads, reorder=False)[0]

    def _arrays(self) -> dict:
        """The arrays a save writes: the build's, with the updated ones exported (compacted)."""
        state = self._state
        if not self._changed:
            return dict(state.arrays)
        arrays = dict(state.arrays, **state.scorer.export())
        meta = np.asarray(arrays["meta"])
        arrays["meta"] = np.array([len(arrays["ids"]), *meta[1:]], np.int64)
        return arrays
