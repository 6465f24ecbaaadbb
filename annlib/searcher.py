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

The searchers are thin: the engine's index objects (csrc/index/) check the
query values, prepare them for the metric, search, and return user ids and
metric scores. Here the arguments are converted and checked.
"""
from __future__ import annotations

import numpy as np

from . import _core, format_v1
from ._validate import as_float_matrix, check_k, check_num_threads, normalize_rows
from .config import IndexConfig
from .filters import CompiledFilter, filter_kwargs
from .io import FORMAT_VERSION, save_index
from .version import __version__


def checked_k(snapshot, final_num_neighbors) -> int:
    """The k of a search (the build's num_neighbors by default), which must not exceed the
    points held: results never take more room than the index (a saved config asking for
    2**31 results is refused, not allocated)."""
    k = snapshot.config.num_neighbors if final_num_neighbors is None else final_num_neighbors
    return check_k(k, snapshot.size(), "final_num_neighbors")


class Searcher:
    """Shared API edge: argument checks, filters, saving."""

    config: IndexConfig
    dim: int
    _format_version: int  # of the arrays it was made from (annlib.io)

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
        queries = as_float_matrix(q, "query", dim=self.dim, allow_1d=True, check_values=False)
        if queries.shape[0] != 1:
            raise ValueError(f"search() takes one query, got {queries.shape[0]}; use search_batched() for several")
        ids, scores = self._search_validated(queries, final_num_neighbors, num_threads, leaves_to_search,
                                             pre_reorder_num_neighbors, filter_kwargs(allowlist, denylist))
        return ids[0], scores[0]

    def search_batched(self, queries, final_num_neighbors=None, pre_reorder_num_neighbors=None,
                       leaves_to_search=None, num_threads: int = 0, *, allowlist=None, denylist=None):
        """Nearest neighbors of each row of queries (shape (n, d)); num_threads=0 uses all cores;
        allowlist/denylist restrict the ids that may come back, for every query (annlib.filters)."""
        queries = as_float_matrix(queries, "queries", dim=self.dim, check_values=False)
        return self._search_validated(queries, final_num_neighbors, num_threads, leaves_to_search,
                                      pre_reorder_num_neighbors, filter_kwargs(allowlist, denylist))

    # Live updates: the quantized index implements them (annlib/quantized/searching.py).
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
        """What a search reads (config, size(), _search), taken once so that a search
        never mixes two states of an index that changes meanwhile (quantized/searching.py)."""
        return self

    def _search_validated(self, queries: np.ndarray, final_num_neighbors, num_threads, leaves_to_search,
                          pre_reorder_num_neighbors, filters: dict):
        snapshot = self._snapshot()
        k = checked_k(snapshot, final_num_neighbors)
        num_threads = check_num_threads(num_threads)
        if "compiled" in filters and filters["compiled"].searcher is not self:
            raise ValueError("this filter was compiled for another index")
        return snapshot._search(queries, k, num_threads, leaves_to_search, pre_reorder_num_neighbors, filters)

    def _search(self, queries: np.ndarray, k: int, num_threads: int, leaves_to_search=None,
                pre_reorder_num_neighbors=None, filters: dict | None = None):
        """(ids, scores in the metric's sense) of checked arguments."""
        raise NotImplementedError

    def save(self, path) -> None:
        """Writes the index to directory `path` atomically, in the current format (see annlib.io)."""
        arrays = self._arrays()
        if self._format_version < FORMAT_VERSION:
            arrays = format_v1.upgrade_arrays(self.config.kind, arrays, self.distance_measure == "squared_l2",
                                              getattr(self.config.brute_force, "dtype", None))
        save_index(path, self.config.to_json(), arrays, __version__)

    def _arrays(self) -> dict:
        raise NotImplementedError


class BruteForceSearcher(Searcher):
    """Scores every point with the GEMM-shaped kernel; exact or binned top-k."""

    def __init__(self, config: IndexConfig, arrays: dict, *, simd_level: str = "", bf16_variant: str = "auto",
                 format_version: int = _core.FORMAT_VERSION):
        self.config = config
        bf = config.brute_force
        self._packed = arrays
        self._format_version = format_version
        self._index = _core.DenseIndex(arrays, format_version, config.distance_measure, bf.dtype, bf.recall_target,
                                       simd_level, bf16_variant)
        self.dim = self._index.dim

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
        return cls(config, packed, format_version=_core.FORMAT_VERSION)

    def with_simd_level(self, level: str, bf16_variant: str = "auto") -> "BruteForceSearcher":
        """The same index, scanned with the kernels of another supported SIMD level
        (bf16_variant "native", "widened" or "amx" forces the avx512_bf16 level's bf16 kernel;
        "auto" takes AMX where available, else "native" on AMD and "widened" elsewhere)."""
        return BruteForceSearcher(self.config, self._packed, simd_level=level, bf16_variant=bf16_variant,
                                  format_version=self._format_version)

    @property
    def simd_level(self) -> str:
        return self._index.simd_level

    def size(self) -> int:
        return self._index.size()

    def num_bins(self, k: int) -> int:
        """Bins used for k neighbors (0 = exact selection)."""
        return self._index.num_bins(k)

    def _search(self, queries, k, num_threads, leaves_to_search=None, pre_reorder_num_neighbors=None,
                filters=None):
        if leaves_to_search is not None or pre_reorder_num_neighbors is not None:
            raise ValueError("leaves_to_search and pre_reorder_num_neighbors apply to the quantized index, "
                             "not to brute force")
        compiled = (filters or {}).get("compiled")
        if compiled is not None:
            bits = compiled.handle
        elif filters is not None and any(v is not None for v in filters.values()):
            bits = self._compile_filter(filters)
        else:
            bits = None
        return self._index.search(queries, k, num_threads, bits)

    def _compile_filter(self, kwargs):
        return self._index.compile_filter(**kwargs)

    def _arrays(self) -> dict:
        return dict(self._packed)
