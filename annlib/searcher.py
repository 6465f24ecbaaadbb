"""Searchers: the object a build returns and a load restores.

Every searcher answers
    search(q, final_num_neighbors=None, pre_reorder_num_neighbors=None, leaves_to_search=None)
        -> (ids int64[k], scores float32[k])
    search_batched(Q, final_num_neighbors=None, pre_reorder_num_neighbors=None, leaves_to_search=None,
                   num_threads=0)
        -> (ids int64[n, k], scores float32[n, k])
None means the build's default; the last two apply to the quantized index.
Both also take allowlist= / denylist= (ids or a boolean mask over ids; see
annlib.filters). Ids are the build's ids= (default 0..n-1).
Scores are in the metric's natural sense: dot product and cosine similarity
are larger-is-better, squared L2 is smaller-is-better. Rows are padded with id
-1 and score -inf (similarities) or +inf (distances) when fewer than k exist
(fewer than k points, or fewer than k allowed by a filter).
"""
from __future__ import annotations

import numpy as np

from . import _core
from ._validate import as_float_matrix, check_k, check_num_threads, normalize_rows
from .config import MAX_INT32, IndexConfig
from .filters import CompiledFilter, filter_kwargs, row_bitmask
from .recall_math import num_bins_for


def read_meta(arrays: dict, length: int) -> list[int]:
    """The `meta` array of a built or loaded index as ints: `length` int64 counts, each in
    [0, 2**31) (what the C++ core takes), so a damaged file is refused with a ValueError."""
    meta = arrays.get("meta")
    if meta is None:
        raise ValueError("missing array 'meta'")
    meta = np.asarray(meta)
    if meta.shape != (length,) or meta.dtype != np.int64:
        raise ValueError(f"array 'meta' must be {length} int64 values, got shape {meta.shape} dtype {meta.dtype}")
    values = [int(v) for v in meta]
    if any(not 0 <= v <= MAX_INT32 for v in values):
        raise ValueError(f"array 'meta' holds out-of-range counts {values}")
    return values


def default_or_checked_k(snapshot, final_num_neighbors) -> int:
    """The k of a search: the build's num_neighbors by default (rows are padded with -1
    once deletes leave fewer points), else the caller's, which must not exceed the
    points held."""
    if final_num_neighbors is None:
        return snapshot.config.num_neighbors
    return check_k(final_num_neighbors, snapshot.size(), "final_num_neighbors")


def check_finite(arrays: dict, names, points: int | None = None) -> None:
    """Refuses NaN or infinity in the named float arrays (the small ones: centers, biases,
    norms, scales), which would otherwise poison every score silently. In arrays padded to
    whole panels the entries past `points` may be -inf (a padding bias: never returned)."""
    for name in names:
        arr = arrays.get(name)
        if arr is None or np.asarray(arr).dtype.kind != "f":
            continue
        arr = np.asarray(arr).ravel()
        head, tail = (arr, arr[:0]) if points is None else (arr[:points], arr[points:])
        if not np.isfinite(head).all() or np.isnan(tail).any() or (tail == np.inf).any():
            raise ValueError(f"array {name!r} holds NaN or infinity")


class Searcher:
    """Shared API edge: validation, query normalisation, score conversion."""

    config: IndexConfig
    dim: int

    def __len__(self) -> int:
        return self.size()

    def size(self) -> int:
        raise NotImplementedError

    @property
    def distance_measure(self) -> str:
        return self.config.distance_measure

    def search(self, q, final_num_neighbors=None, pre_reorder_num_neighbors=None, leaves_to_search=None, *,
               allowlist=None, denylist=None, num_threads: int = 1):
        """Nearest neighbors of one query vector (shape (d,) or (1, d)); allowlist/denylist
        restrict the ids that may come back (annlib.filters)."""
        queries = as_float_matrix(q, "query", dim=self.dim, allow_1d=True)
        if queries.shape[0] != 1:
            raise ValueError(f"search() takes one query, got {queries.shape[0]}; use search_batched() for several")
        ids, scores = self._search_validated(queries, final_num_neighbors, num_threads, leaves_to_search,
                                             pre_reorder_num_neighbors, filter_kwargs(allowlist, denylist))
        return ids[0], scores[0]

    def search_batched(self, queries, final_num_neighbors=None, pre_reorder_num_neighbors=None,
                       leaves_to_search=None, num_threads: int = 0, *, allowlist=None, denylist=None):
        """Nearest neighbors of each row of queries (shape (n, d)); num_threads=0 uses all cores;
        allowlist/denylist restrict the ids that may come back, for every query (annlib.filters)."""
        queries = as_float_matrix(queries, "queries", dim=self.dim)
        return self._search_validated(queries, final_num_neighbors, num_threads, leaves_to_search,
                                      pre_reorder_num_neighbors, filter_kwargs(allowlist, denylist))

    # Live updates: the quantized index implements them (annlib/quantized.py).
    def upsert(self, ids, vectors, *, num_threads: int = 0) -> None:
        self._no_updates("upsert")

    def delete(self, ids) -> None:
        self._no_updates("delete")

    def _no_updates(self, what: str):
        raise TypeError(f"{what}() needs a quantized index (builder.tree(...).score_ah(...)); a "
                        f"{type(self).__name__} is rebuilt from the data instead")

    def compile_filter(self, allowlist=None, denylist=None) -> CompiledFilter:
        """allowlist/denylist (ids or boolean masks over ids) as a bitmask made once: pass the
        result as allowlist= to many searches (it follows later updates on its own)."""
        return CompiledFilter(self, filter_kwargs(allowlist, denylist))

    def _compile_filter(self, kwargs: dict):
        raise NotImplementedError

    def _snapshot(self):
        """What a search reads (config, size(), _search_raw), taken once so that a search
        never mixes two states of an index that changes meanwhile (annlib/quantized.py)."""
        return self

    def _search_validated(self, queries: np.ndarray, final_num_neighbors, num_threads, leaves_to_search,
                          pre_reorder_num_neighbors, filters: dict):
        snapshot = self._snapshot()
        k = default_or_checked_k(snapshot, final_num_neighbors)
        num_threads = check_num_threads(num_threads)
        if "compiled" in filters and filters["compiled"].searcher is not self:
            raise ValueError("this filter was compiled for another index")
        if self.distance_measure == "cosine":
            queries = normalize_rows(queries, "query")
        ids, raw = snapshot._search_raw(queries, k, num_threads, leaves_to_search, pre_reorder_num_neighbors,
                                        filters)
        return ids, self._to_metric(queries, raw)

    def _to_metric(self, queries: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """Converts internal scores (<q, x> + bias, larger is better) to the metric's scale."""
        if self.distance_measure != "squared_l2":
            return raw
        # raw = <q,x> - |x|^2/2, so |q - x|^2 = |q|^2 - 2 raw; padding (-inf) becomes +inf.
        # |q|^2 summed in double and rounded once, as the C++ single-query path does.
        qnorm = np.einsum("ij,ij->i", queries, queries, dtype=np.float64).astype(np.float32)[:, None]
        dist = qnorm - 2.0 * raw
        np.maximum(dist, 0.0, out=dist)
        return dist.astype(np.float32, copy=False)

    def _search_raw(self, queries: np.ndarray, k: int, num_threads: int, leaves_to_search=None,
                    pre_reorder_num_neighbors=None, filters: dict | None = None):
        raise NotImplementedError

    def save(self, path) -> None:
        """Writes the index to directory `path` atomically (see annlib.io)."""
        from . import __version__
        from .io import save_index

        save_index(path, self.config.to_json(), self._arrays(), __version__)

    def _arrays(self) -> dict:
        raise NotImplementedError


class BruteForceSearcher(Searcher):
    """Scores every point with the GEMM-shaped kernel; exact or binned top-k."""

    def __init__(self, config: IndexConfig, arrays: dict, *, simd_level: str = "", bf16_variant: str = "auto"):
        self.config = config
        self._n, self.dim = read_meta(arrays, 2)
        check_finite(arrays, ("bias", "norms", "scale", "offset", "scaled_sums"), self._n)
        self._packed = arrays
        bf = config.brute_force
        self._scorer = _core.DenseScorer(arrays, self._n, self.dim, bf.dtype, simd_level, bf16_variant)
        # User ids of the rows (None: 0..n-1), checked like the builder's ids=.
        self._ids = None
        if "ids" in arrays:
            from .updates import check_ids

            self._ids = check_ids(np.asarray(arrays["ids"]))
            if len(self._ids) != self._n:
                raise ValueError(f"ids has {len(self._ids)} entries for {self._n} points")

    @classmethod
    def build(cls, config: IndexConfig, database: np.ndarray, num_threads: int = 0,
              ids: np.ndarray | None = None) -> "BruteForceSearcher":
        if config.distance_measure == "cosine":
            database = normalize_rows(database, "database")
        packed = _core.pack_dense(database, config.brute_force.dtype,
                                  config.distance_measure == "squared_l2", num_threads)
        packed["meta"] = np.array(database.shape, dtype=np.int64)
        if ids is not None:
            packed["ids"] = ids
        return cls(config, packed)

    def with_simd_level(self, level: str, bf16_variant: str = "auto") -> "BruteForceSearcher":
        """The same index, scanned with the kernels of another supported SIMD level
        (bf16_variant "native", "widened" or "amx" forces the avx512_bf16 level's bf16 kernel;
        "auto" takes AMX where available, else "native" on AMD and "widened" elsewhere)."""
        return BruteForceSearcher(self.config, self._packed, simd_level=level, bf16_variant=bf16_variant)

    @property
    def simd_level(self) -> str:
        return self._scorer.simd_level

    def size(self) -> int:
        return self._n

    def num_bins(self, k: int) -> int:
        """Bins used for k neighbors (0 = exact selection)."""
        bins = num_bins_for(self.config.brute_force.recall_target, k)
        return 0 if bins >= self._n else bins

    # Selection state is (k or L + 32) slots per query; chunking bounds it to
    # about 256 MB however many queries a batch holds.
    _STATE_BYTES = 256 << 20

    def _search_raw(self, queries, k, num_threads, leaves_to_search=None, pre_reorder_num_neighbors=None,
                    filters=None):
        if leaves_to_search is not None or pre_reorder_num_neighbors is not None:
            raise ValueError("leaves_to_search and pre_reorder_num_neighbors apply to the quantized index, "
                             "not to brute force")
        bins = self.num_bins(k)
        allowed, count = None, self._n
        compiled = (filters or {}).get("compiled")
        if compiled is not None:
            allowed, count = compiled.handle
        elif filters is not None and any(v is not None for v in filters.values()):
            allowed, count = self._compile_filter(filters)
        ids, raw = self._scan(queries, k, bins, num_threads, allowed)
        if allowed is not None and bins:
            # Binned selection keeps one point per bin; a filter can leave fewer than k
            # bins with an allowed point, so those queries are selected exactly.
            short = np.flatnonzero((ids >= 0).sum(axis=1) < min(k, count))
            if len(short):
                ids[short], raw[short] = self._scan(queries[short], k, 0, num_threads, allowed)
        if self._ids is not None:
            ids = np.where(ids >= 0, self._ids[np.maximum(ids, 0)], -1)
        return ids, raw

    def _compile_filter(self, kwargs):
        """(bit per point as uint64 words covering every panel, allowed count)."""
        return row_bitmask(kwargs, self._ids, self._n, (self._n + 31) // 32 * 32 // 64 + 1)

    def _scan(self, queries, k, bins, num_threads, allowed):
        # 8 bytes (score + id) per slot, doubled as a margin for database splits.
        per_query = 8 * (k if bins == 0 else bins + 32) * 2
        chunk = max(256, self._STATE_BYTES // per_query)
        if len(queries) <= chunk:
            return self._scorer.search(queries, k, bins, num_threads, allowed)
        parts = [self._scorer.search(queries[i:i + chunk], k, bins, num_threads, allowed)
                 for i in range(0, len(queries), chunk)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _arrays(self) -> dict:
        return dict(self._packed)


def _searcher_kinds():
    from .quantized import QuantizedSearcher

    return {"brute_force": BruteForceSearcher, "quantized": QuantizedSearcher}
