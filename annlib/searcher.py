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

import threading

import numpy as np

from . import _core, dense_layout, format_v1
from ._validate import as_float_matrix, check_ids, check_k, check_num_threads, normalize_rows, not_held_error
from .config import IndexConfig
from .filters import CompiledFilter, filter_kwargs
from .io import FORMAT_VERSION, load_index, restore_files, save_index, saved_files
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

    def __contains__(self, id_) -> bool:
        if np.ndim(id_) != 0:
            raise TypeError("`in` takes one id; contains(ids) answers for several")
        return self.contains(id_)

    def contains(self, ids):
        """Whether each id is in the index: a bool array, or a bool for one scalar id."""
        if np.ndim(ids) == 0:
            return bool(self._contains(check_ids(np.asarray([ids]), "id"))[0])
        return self._contains(check_ids(ids))

    def _contains(self, ids: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self._description())})"

    def _description(self) -> list[str]:
        """What repr() shows: kind, metric, size, dimension, the kind's settings, SIMD level."""
        return [f"{self.distance_measure}", f"{self.size():,} points", f"dim {self.dim}"]

    # Pickles carry the saved format (annlib.io.saved_files): a searcher moves into
    # multiprocessing, joblib and Ray workers and is checked on arrival like a load.
    def __reduce__(self):
        return (type(self)._unpickle, (saved_files(self.save),))

    @classmethod
    def _unpickle(cls, files):
        def load(path):
            config_json, arrays, manifest = load_index(path, mmap=False, verify=True)
            return cls(IndexConfig.from_json(config_json), arrays, format_version=manifest["format_version"])

        return restore_files(files, load)

    @property
    def distance_measure(self) -> str:
        return self.config.distance_measure

    @property
    def search_defaults(self) -> dict:
        """The knobs a search without arguments uses now: final_num_neighbors,
        leaves_to_search and pre_reorder_num_neighbors (0 where the index has none)."""
        return {"final_num_neighbors": self.config.num_neighbors, "leaves_to_search": 0,
                "pre_reorder_num_neighbors": 0}

    @property
    def format_version(self) -> int:
        """The on-disk format version of the files this index was loaded from (annlib.io)."""
        return self._format_version

    def search(self, q, final_num_neighbors=None, pre_reorder_num_neighbors=None, leaves_to_search=None, *,
               allowlist=None, denylist=None, num_threads: int = 1):
        """Nearest neighbors of one query vector (shape (d,) or (1, d)); allowlist/denylist
        restrict the ids that may come back (annlib.filters)."""
        queries = as_float_matrix(q, "query", dim=self.dim, allow_1d=True, check_values=False)
        if queries.shape[0] != 1:
            raise ValueError(f"search() takes one query, got {queries.shape[0]}; use search_batched() for several")
        ids, scores = self._search_validated(queries, final_num_neighbors, num_threads, leaves_to_search,
                                             pre_reorder_num_neighbors, self._filter_args(allowlist, denylist))
        return ids[0], scores[0]

    def search_batched(self, queries, final_num_neighbors=None, pre_reorder_num_neighbors=None,
                       leaves_to_search=None, num_threads: int = 0, *, allowlist=None, denylist=None):
        """Nearest neighbors of each row of queries (shape (n, d)); num_threads=0 uses all cores;
        allowlist/denylist restrict the ids that may come back, for every query (annlib.filters)."""
        queries = as_float_matrix(queries, "queries", dim=self.dim, check_values=False)
        return self._search_validated(queries, final_num_neighbors, num_threads, leaves_to_search,
                                      pre_reorder_num_neighbors, self._filter_args(allowlist, denylist))

    def upsert(self, ids, vectors, *, num_threads: int = 0) -> None:
        """Adds points, or replaces the points with these ids."""
        raise NotImplementedError

    def check_upsert(self, ids, vectors) -> None:
        """Raises the ValueError or TypeError that upsert(ids, vectors) would raise, and
        changes nothing (a caller that logs a write before applying it checks it first)."""
        self._upsert_arguments(ids, vectors, 1)

    def _upsert_arguments(self, ids, vectors, num_threads):
        """(ids, vectors as the index stores them, num_threads) of an upsert, checked; None
        when there is nothing to add."""
        ids = check_ids(ids)
        x = as_float_matrix(vectors, "vectors", dim=self.dim)
        if len(x) != len(ids):
            raise ValueError(f"ids has {len(ids)} entries but vectors has {len(x)} rows")
        num_threads = check_num_threads(num_threads)
        if len(ids) == 0:
            return None
        if self.distance_measure == "cosine":
            x = normalize_rows(x, "vectors")
        return ids, x, num_threads

    def delete(self, ids) -> None:
        """Removes points by id, all or none."""
        raise NotImplementedError

    def compile_filter(self, allowlist=None, denylist=None) -> CompiledFilter:
        """allowlist/denylist (ids or boolean masks over ids) as a bitmask made once: pass the
        result as allowlist= to many searches (it follows later updates on its own)."""
        return CompiledFilter(self, filter_kwargs(allowlist, denylist))

    def _compile_filter(self, kwargs: dict):
        raise NotImplementedError

    def _filter_args(self, allowlist, denylist) -> dict:
        """The engine's filter arguments (filter_kwargs), a compiled filter checked to be this index's."""
        filters = filter_kwargs(allowlist, denylist)
        if "compiled" in filters and filters["compiled"].searcher is not self:
            raise ValueError("this filter was compiled for another index")
        return filters

    def _snapshot(self):
        """What a search reads (config, size(), _search), taken once so that a search
        never mixes two states of an index that changes meanwhile (quantized/searching.py)."""
        return self

    def _search_validated(self, queries: np.ndarray, final_num_neighbors, num_threads, leaves_to_search,
                          pre_reorder_num_neighbors, filters: dict):
        snapshot = self._snapshot()
        k = checked_k(snapshot, final_num_neighbors)
        num_threads = check_num_threads(num_threads)
        return snapshot._search(queries, k, num_threads, leaves_to_search, pre_reorder_num_neighbors, filters)

    def _search(self, queries: np.ndarray, k: int, num_threads: int, leaves_to_search=None,
                pre_reorder_num_neighbors=None, filters: dict | None = None):
        """(ids, scores in the metric's sense) of checked arguments."""
        raise NotImplementedError

    def save(self, path, *, extra_arrays: dict | None = None) -> None:
        """Writes the index to directory `path` atomically, in the current format (see annlib.io).
        extra_arrays: more named arrays written beside the index's (a shard of a sharded index
        keeps its bookkeeping there); a load reads them into the arrays and the index ignores them."""
        arrays = self._arrays()
        if self._format_version < FORMAT_VERSION:
            arrays = format_v1.upgrade_arrays(self.config.kind, arrays, self.distance_measure == "squared_l2",
                                              getattr(self.config.brute_force, "dtype", None))
        clash = set(extra_arrays or {}) & set(arrays)
        if clash:
            raise ValueError(f"extra_arrays may not replace the index's own arrays ({', '.join(sorted(clash))})")
        save_index(path, self.config.to_json(), {**arrays, **(extra_arrays or {})}, __version__)

    def _arrays(self) -> dict:
        raise NotImplementedError


def _packing(config: IndexConfig) -> tuple[str, bool]:
    """(dtype, squared_l2): how a brute-force index's points are packed."""
    return config.brute_force.dtype, config.distance_measure == "squared_l2"


class _DenseState:
    """What a brute-force search reads: the packed arrays and the engine's index over
    them, swapped as a whole by an update so that a search never mixes two."""

    __slots__ = ("config", "arrays", "index")

    def __init__(self, config: IndexConfig, arrays: dict, index):
        self.config, self.arrays, self.index = config, arrays, index

    def size(self) -> int:
        return self.index.size()

    def prepare_screen(self, num_threads: int) -> None:
        """Makes a binned float32 index's screen data (an int8 copy, bf16 residuals) and its
        check now, so that no search pays for them (the engine does nothing for other indexes)."""
        if self.index.size() > 0:
            self.index.screens(num_threads)

    def _search(self, queries, k, num_threads, leaves_to_search=None, pre_reorder_num_neighbors=None,
                filters=None):
        if leaves_to_search is not None or pre_reorder_num_neighbors is not None:
            raise ValueError("leaves_to_search and pre_reorder_num_neighbors apply to the quantized index, "
                             "not to brute force")
        compiled = (filters or {}).get("compiled")
        if compiled is not None:
            made_for, bits = compiled.handle
            if made_for is not self.index:  # compiled before an update: redo it for these points
                bits = self.index.compile_filter(**compiled.kwargs)
                compiled.handle = (self.index, bits)
        elif filters is not None and any(v is not None for v in filters.values()):
            bits = self.index.compile_filter(**filters)
        else:
            bits = None
        return self.index.search(queries, k, num_threads, bits)


class BruteForceSearcher(Searcher):
    """Scores every point with the GEMM-shaped kernel; exact or binned top-k.

    Updates (upsert, delete) gather the kept points' packed bytes and the new points'
    into new arrays (annlib.dense_layout): a copy of the index per call, so send them
    in batches; searches in other threads see the index before or after the whole call."""

    def __init__(self, config: IndexConfig, arrays: dict, *, simd_level: str = "", bf16_variant: str = "auto",
                 format_version: int = _core.FORMAT_VERSION):
        self._simd_request = (simd_level, bf16_variant)
        self._format_version = format_version
        self._state = self._make_state(config, arrays)
        self.dim = self._state.index.dim
        self._update_lock = threading.Lock()  # one update at a time

    def _make_state(self, config: IndexConfig, arrays: dict, screen_decision: int = -1) -> _DenseState:
        bf = config.brute_force
        index = _core.DenseIndex(arrays, self._format_version, config.distance_measure, bf.dtype, bf.recall_target,
                                 *self._simd_request, screen_decision)
        return _DenseState(config, arrays, index)

    @classmethod
    def build(cls, config: IndexConfig, database: np.ndarray, num_threads: int = 0,
              ids: np.ndarray | None = None) -> "BruteForceSearcher":
        """database: float32 [n, d], checked; n may be 0 (an index filled by upsert())."""
        if config.distance_measure == "cosine":
            database = normalize_rows(database, "database")
        packed = dense_layout.pack(database, *_packing(config), num_threads, ids)
        searcher = cls(config, packed, format_version=_core.FORMAT_VERSION)
        searcher._state.prepare_screen(num_threads)
        return searcher

    @property
    def config(self) -> IndexConfig:
        return self._state.config

    def _snapshot(self) -> _DenseState:
        return self._state

    def with_simd_level(self, level: str, bf16_variant: str = "auto") -> "BruteForceSearcher":
        """The same index, scanned with the kernels of another supported SIMD level
        (bf16_variant "native", "widened" or "amx" forces the avx512_bf16 level's bf16 kernel;
        "auto" takes AMX where available, else "native" on AMD and "widened" elsewhere)."""
        state = self._state
        return BruteForceSearcher(state.config, state.arrays, simd_level=level, bf16_variant=bf16_variant,
                                  format_version=self._format_version)

    @property
    def simd_level(self) -> str:
        return self._state.index.simd_level

    def size(self) -> int:
        return self._state.size()

    def num_bins(self, k: int) -> int:
        """Bins for k neighbors by the recall target (0 = exact selection); a search screened
        by the int8 copy takes at least num_bins(10) (uses_screen)."""
        return self._state.index.num_bins(k)

    def uses_screen(self, num_threads: int = 0) -> bool:
        """Whether binned float32 searches (recall_target < 1) choose each bin's winner with
        cheaper scores, the winners then rescored exactly: an int8 copy of the data (a quarter
        of its bytes more; x86 CPUs, any number of queries, batches on AMX int8 tiles where
        present) or, where that copy is refused, three bf16 tile products with AMX (batches of
        64+ queries per thread) or one bf16 product (AVX-512 BF16, batches of 16+ queries per
        thread). A screen other than AMX's bf16x3 is used only where a sample of this index's
        points, held out and searched both ways, loses at most 0.5% of the float32 winners, and
        with the bins of k = 10 or more (below k = 10 the int8 copy takes k = 10's bins; the
        one-product bf16 screen is not used). build() and every update make that check and the
        screen's data (an update that at most halves or doubles the index keeps the check's
        answer); an index loaded from disk makes them at its first binned search, or at this
        call."""
        return self._state.index.screens(check_num_threads(num_threads))

    def _description(self) -> list[str]:
        bf = self.config.brute_force
        mode = "exact" if bf.recall_target >= 1.0 else f"binned, recall_target {bf.recall_target:g}"
        return [f"brute force {bf.dtype} {mode}", *super()._description(), f"simd {self.simd_level}"]

    # ---- updates ---------------------------------------------------------------

    def upsert(self, ids, vectors, *, num_threads: int = 0) -> None:
        """Adds points, or replaces the points with these ids (packed as a build packs them)."""
        checked = self._upsert_arguments(ids, vectors, num_threads)
        if checked is None:
            return
        ids, x, num_threads = checked
        with self._update_lock:
            state = self._state
            new = dense_layout.pack(x, *_packing(state.config), num_threads, ids)
            kept = np.flatnonzero(~np.isin(dense_layout.ids_of(state.arrays), ids))
            self._replace(state, [(state.arrays, kept), (new, np.arange(len(ids)))], num_threads)

    def delete(self, ids) -> None:
        """Removes points by id, all or none: an id the index does not hold raises ValueError
        and nothing is deleted."""
        ids = check_ids(ids)
        if len(ids) == 0:
            return
        with self._update_lock:
            state = self._state
            held = dense_layout.ids_of(state.arrays)
            missing = ids[~np.isin(ids, held)]
            if missing.size:
                raise not_held_error(missing, ids.size)
            self._replace(state, [(state.arrays, np.flatnonzero(~np.isin(held, ids)))])

    def _replace(self, state: _DenseState, parts, num_threads: int = 0) -> None:
        arrays = dense_layout.gather(parts, self.dim, *_packing(state.config))
        self._format_version = _core.FORMAT_VERSION  # gathered arrays are in the current format
        # The screen check (a sample searched twice) is kept across updates that at
        # most halve or double the index: the data it judged is mostly still there.
        old_size, new_size = state.index.size(), int(np.asarray(arrays["meta"])[0])
        carried = state.index.screen_decision() if old_size // 2 <= new_size <= 2 * old_size else -1
        new_state = self._make_state(state.config, arrays, carried)
        new_state.prepare_screen(num_threads)  # the update pays for it, not the next search
        self._state = new_state

    def _contains(self, ids: np.ndarray) -> np.ndarray:
        return np.isin(ids, dense_layout.ids_of(self._state.arrays))

    def vectors(self, ids) -> np.ndarray:
        """The vectors of these ids as the index holds them: float32 [len(ids), d] (exact for
        float32; bfloat16 and int8 give back their rounded values; unit length for cosine).
        An id the index does not hold raises ValueError."""
        ids = check_ids(np.atleast_1d(ids))
        state = self._state
        held = dense_layout.ids_of(state.arrays)
        order = np.argsort(held, kind="stable")
        found = np.searchsorted(held, ids, sorter=order)
        ok = found < len(held)
        ok[ok] = held[order[found[ok]]] == ids[ok]
        if not ok.all():
            raise ValueError(f"vectors: the index holds no point with id {int(ids[~ok][0])}")
        slots = order[found]
        return dense_layout.unpack(state.arrays, slots, self.dim, state.config.brute_force.dtype)

    def _compile_filter(self, kwargs):
        index = self._state.index
        return index, index.compile_filter(**kwargs)

    def save(self, path, *, extra_arrays: dict | None = None) -> None:
        """Writes the index as it is now to directory `path`, atomically; updates wait until
        it is written."""
        with self._update_lock:
            super().save(path, extra_arrays=extra_arrays)

    def _arrays(self) -> dict:
        return dict(self._state.arrays)
