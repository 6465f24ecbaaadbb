"""The coordinator of a sharded index: ShardedSearcher.

It lives in the caller's process and holds the trained, empty index (every
leaf's center and the AH codebooks: the "skeleton"), the shard of each leaf,
and one Ray actor per shard (shard.py). A search:

  1. plans as one index would (a filter's share of all the points widens the
     leaves searched or picks exact search: _core.plan_search, from counts
     summed over the shards);
  2. chooses each query's leaves once, bit for bit as one index would
     (choose_leaves on the skeleton);
  3. sends each shard the queries that probe its leaves, with those leaves
     (random split: every query, every leaf); each answers with its best
     distinct candidates by AH score and their reordered scores, except for
     the queries whose leaves all lie on it, which it finishes itself (with
     one shard, all of them: it also chooses their leaves);
  4. merges (_core.merge_candidates): SOAR copies on two shards counted once,
     the best pre_reorder by AH score, their best k by reordered score;
  5. searches exactly, over every shard, the queries left with fewer than k
     results (as one index fills them in).

So a sharded search returns what one index over the same points returns, ties
included: one index breaks them by storage order, and the coordinator numbers
the points in that order (ordering.py) for the merge to break them the same way.
The condition: the shards run the same SIMD level. (With SOAR each shard's
candidates are its best distinct points, so a point's best copy reaches the merge
whenever it belongs in the top pre_reorder.)

Updates go through the coordinator, one at a time: upsert places points once
(the same rule as one index, annlib/quantized/placement.py) and sends each
shard its copies; delete checks that every id is held before any is deleted.
An update reaches the shards one after another: a search running meanwhile may
see it on some shards only.

Failures: a shard whose actor died is restarted from its last save with the
updates made since replayed (the coordinator keeps them), then the call is
retried once; a shard that was never saved cannot be restarted, and the search
raises ShardUnavailableError naming it, unless allow_partial=True asked for
the answer of the shards that are left.
"""
from __future__ import annotations

import functools
import json
import threading
import time
import uuid
import weakref
from pathlib import Path

import numpy as np

from .. import _core
from .._validate import as_float_matrix, check_ids, check_k, check_num_threads, not_held_error
from ..filters import CompiledFilter, filter_kwargs
from ..indexes import load_single
from ..io import load_index, save_index
from ..params import SearchParams
from ..quantized import QuantizedSearcher
from ..quantized.maintenance import health_report
from ..quantized.placement import place_in_index
from ..quantized.reorder_copy import rows_dtype_to_add
from ..version import __version__
from . import _ray
from .routing import MODES, split
from .shard import FilterKey, Shard

FORMAT_KIND = "sharded"
# Shard methods that only read run in their own concurrency group, several at a
# time; updates run in the default group, one at a time and in the order sent.
SEARCH_GROUP = "search"
SEARCH_CONCURRENCY = 4
READ_ONLY = ("status", "allowed_count", "search_part", "leaves_of", "leaf_slots", "stage_times", "own_ids",
             "vectors", "contains", "health")
# How long a restarted shard may wait for a node with the resources it asks for.
RESTART_TIMEOUT_S = 120.0


class ShardedFilter:
    """An allowlist/denylist compiled once on every shard of a sharded index
    (ShardedSearcher.compile_filter): pass it as allowlist= to many searches. A search
    then sends the shards its name, not its ids, and each shard uses its bitmask; it
    follows later updates on its own, and is dropped from the shards when this object
    is garbage-collected."""

    def __init__(self, searcher: "ShardedSearcher", key: str):
        self.searcher = searcher
        self.key = key


class ShardUnavailableError(RuntimeError):
    """A shard's actor is gone and could not be restarted."""

    def __init__(self, shard: int, num_shards: int, reason: str):
        super().__init__(f"shard {shard} of {num_shards} is unavailable: {reason}")
        self.shard = shard


def actor_class(options: dict | None = None):
    """The Ray actor class of a shard, with the caller's options (num_cpus, resources,
    scheduling_strategy, ...) over ours."""
    ray = _ray.ensure_started()
    merged = {"num_cpus": 0, "max_restarts": 0, "scheduling_strategy": "SPREAD"}
    merged.update(options or {})
    return ray.remote(concurrency_groups={SEARCH_GROUP: SEARCH_CONCURRENCY})(_shard_actor(ray)).options(**merged)


def _shard_actor(ray):
    """Shard with its read-only methods in the search group (declared on the class, which
    also works through Ray Client, where a call cannot choose its group)."""

    def in_search_group(name):
        inner = getattr(Shard, name)

        @functools.wraps(inner)
        def method(self, *args):
            return inner(self, *args)
        return ray.method(concurrency_group=SEARCH_GROUP)(method)

    return type("Shard", (Shard,), {name: in_search_group(name) for name in READ_ONLY})


class ShardedSearcher:
    """A quantized index split over Ray actors, searched like one index (see the module
    docstring). Made by annlib.distributed.build or annlib.distributed.load."""

    def __init__(self, skeleton: QuantizedSearcher, owner: np.ndarray | None, actors: list, statuses: list,
                 *, mode: str, sources: list, next_number: int, actor_options: dict | None = None,
                 shard_threads: int = 0):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self._skeleton = skeleton
        self._owner = None if owner is None else np.ascontiguousarray(owner, np.int32)
        self._mode = mode
        self._actors = list(actors)
        self._statuses = list(statuses)
        self._sources = list(sources)  # per shard: {"path": its last save} or None
        self._replay: list[list] = [[] for _ in actors]  # per shard: updates since that save
        self._actor_options = actor_options
        self._shard_threads = shard_threads
        self._update_lock = threading.RLock()
        self._filters: dict = {}  # key -> (allowlist, denylist) compiled on every shard; restarts recompile
        self._next_number = int(next_number)  # the insertion number of the next point added (ordering.py)
        self.dim = skeleton.dim
        self._num_blocks = int(np.asarray(skeleton._state.arrays["meta"])[2])
        self._knobs = skeleton._snapshot()

    # ---- what the index is -----------------------------------------------------------

    kind = "sharded"
    tune_result = None  # builder(...).autopilot()'s TuneResult (annlib.distributed.build sets it)

    @property
    def num_shards(self) -> int:
        return len(self._actors)

    @property
    def mode(self) -> str:
        """"leaf" (shards own leaves, queries go to the shards of their leaves) or "random"."""
        return self._mode

    @property
    def config(self):
        return self._knobs.config

    @property
    def distance_measure(self) -> str:
        return self.config.distance_measure

    @property
    def num_leaves(self) -> int:
        return self._skeleton.num_leaves

    @property
    def simd_level(self) -> str:
        """The coordinator's SIMD level (every shard should run the same: see the module docstring)."""
        return self._skeleton.simd_level

    @property
    def format_version(self) -> int:
        return self._skeleton.format_version

    @property
    def leaf_owner(self) -> np.ndarray | None:
        """The shard of each leaf (by-leaf mode), or None (random split)."""
        return None if self._owner is None else self._owner.copy()

    @property
    def search_defaults(self) -> dict:
        leaves, pre, k = self._knobs.default_knobs
        return {"final_num_neighbors": k, "leaves_to_search": leaves,
                "pre_reorder_num_neighbors": pre if self.config.reorder is not None else 0}

    def size(self) -> int:
        return int(sum(status["size"] for status in self._statuses))

    def __len__(self) -> int:
        return self.size()

    def shard_sizes(self) -> list[int]:
        return [int(status["size"]) for status in self._statuses]

    def __repr__(self) -> str:
        return (f"ShardedSearcher({self.num_shards} shards by {self._mode}, {self.distance_measure}, "
                f"{self.size():,} points, dim {self.dim}, {self.num_leaves} leaves)")

    def set_default_params(self, params: SearchParams) -> None:
        """The knobs a search without arguments uses (QuantizedSearcher.set_default_params);
        save() keeps them in the skeleton's config."""
        with self._update_lock:
            self._skeleton._state = self._knobs.with_defaults(params, self.size())
            self._knobs = self._skeleton._snapshot()

    # ---- calls to the shards ----------------------------------------------------------

    def _call(self, calls: list, *, allow_partial: bool = False) -> dict:
        """Runs calls [(shard, method name, args)] on the shards at once: {shard: result}.
        A shard whose actor died is restarted (from its last save, the updates since
        replayed) and its call retried once; one that cannot be is left out with
        allow_partial, else ShardUnavailableError."""
        ray = _ray.ray()
        died = _ray.actor_died_errors()
        handles = {shard: self._actors[shard] for shard, _, _ in calls}
        refs = {shard: getattr(self._actors[shard], name).remote(*args) for shard, name, args in calls}
        by_shard = {shard: (name, args) for shard, name, args in calls}
        results = {}
        for shard, ref in refs.items():
            try:
                results[shard] = ray.get(ref)
                continue
            except died as exc:
                reason = f"its actor died ({type(exc).__name__})"
            try:
                self._restart(shard, handles[shard], reason)
                name, args = by_shard[shard]
                results[shard] = ray.get(getattr(self._actors[shard], name).remote(*args))
            except (ShardUnavailableError, *died) as exc:
                if not allow_partial:
                    if isinstance(exc, ShardUnavailableError):
                        raise
                    raise ShardUnavailableError(shard, self.num_shards, "it died again after a restart") from exc
        return results

    def _restart(self, shard: int, dead, reason: str) -> None:
        """A new actor for `shard` (whose actor `dead` died) from its last save, with the
        updates since replayed; nothing when another call restarted it meanwhile."""
        with self._update_lock:
            if self._actors[shard] is not dead:
                return
            source = self._sources[shard]
            if source is None:
                raise ShardUnavailableError(shard, self.num_shards,
                                            f"{reason}, and it was never saved, so it cannot be restarted "
                                            "(save() the index to make its shards restartable)")
            ray = _ray.ray()
            actor = actor_class(self._actor_options).remote(source, self._shard_threads)
            try:
                status = ray.get(actor.status.remote(), timeout=RESTART_TIMEOUT_S)
                for name, args in self._replay[shard]:
                    status = ray.get(getattr(actor, name).remote(*args))
                for key, lists in self._filters.items():
                    ray.get(actor.compile_filter.remote(key, *lists))
            except _ray.actor_died_errors() as exc:
                raise ShardUnavailableError(shard, self.num_shards,
                                            f"{reason}, and restarting it from {source['path']} failed "
                                            f"({_first_line(exc)})") from exc
            except ray.exceptions.GetTimeoutError as exc:
                ray.kill(actor)
                raise ShardUnavailableError(shard, self.num_shards,
                                            f"{reason}, and no node could take it within {RESTART_TIMEOUT_S:g} s "
                                            "(its actor_options ask for resources no live node has free)") from exc
            self._actors[shard] = actor
            self._statuses[shard] = status

    # ---- filters ------------------------------------------------------------------------

    def compile_filter(self, allowlist=None, denylist=None) -> ShardedFilter:
        """allowlist/denylist (ids or boolean masks over ids) compiled once on every shard:
        pass the result as allowlist= to many searches (ShardedFilter)."""
        if isinstance(allowlist, (CompiledFilter, ShardedFilter)) or isinstance(denylist,
                                                                              (CompiledFilter, ShardedFilter)):
            raise TypeError("compile_filter() takes ids or boolean masks, not a compiled filter")
        filter_kwargs(allowlist, denylist)  # bad lists fail here, before any shard sees them
        key = uuid.uuid4().hex
        with self._update_lock:  # a shard restarted from here on compiles it too
            self._filters[key] = (allowlist, denylist)
        try:
            self._call([(shard, "compile_filter", (key, allowlist, denylist)) for shard in range(self.num_shards)])
        except BaseException:
            self._forget_filter(weakref.ref(self), key)
            raise
        compiled = ShardedFilter(self, key)
        weakref.finalize(compiled, ShardedSearcher._forget_filter, weakref.ref(self), key)
        return compiled

    @staticmethod
    def _forget_filter(searcher_ref, key: str) -> None:
        """Drops a compiled filter from the coordinator and, without waiting, from the shards."""
        searcher = searcher_ref()
        if searcher is None:
            return
        with searcher._update_lock:
            searcher._filters.pop(key, None)
            actors = list(searcher._actors)
        try:
            for actor in actors:
                actor.drop_filter.remote(key)
        except Exception:  # Ray is shut down (at exit): the shards are gone with it
            pass

    def _shard_filters(self, allowlist, denylist) -> dict:
        """The filters as search_part and allowed_count take them: lists and masks as given,
        a ShardedFilter as its FilterKey."""
        if isinstance(allowlist, ShardedFilter):
            if allowlist.searcher is not self:
                raise ValueError("this filter was compiled for another index")
            if denylist is not None:
                raise ValueError("a compiled filter already holds its denylist: pass denylist= to compile_filter()")
            return {"allowlist": FilterKey(allowlist.key), "denylist": None}
        if isinstance(allowlist, CompiledFilter) or isinstance(denylist, (CompiledFilter, ShardedFilter)):
            raise TypeError("a sharded search takes ids, boolean masks or a filter from this index's "
                            "compile_filter(), not another index's compiled filter")
        return {"allowlist": allowlist, "denylist": denylist}

    # ---- search -------------------------------------------------------------------------

    def search(self, q, final_num_neighbors=None, pre_reorder_num_neighbors=None, leaves_to_search=None, *,
               allowlist=None, denylist=None, num_threads: int = 1, allow_partial: bool = False):
        """Nearest neighbors of one query vector: (ids [k], scores [k]) (see search_batched)."""
        query = as_float_matrix(q, "query", dim=self.dim, allow_1d=True, check_values=False)
        if query.shape[0] != 1:
            raise ValueError(f"search() takes one query, got {query.shape[0]}; use search_batched() for several")
        out = self.search_batched(query, final_num_neighbors, pre_reorder_num_neighbors, leaves_to_search,
                                  num_threads, allowlist=allowlist, denylist=denylist, allow_partial=allow_partial)
        return (out[0][0], out[1][0], *out[2:])

    def search_batched(self, queries, final_num_neighbors=None, pre_reorder_num_neighbors=None,
                       leaves_to_search=None, num_threads: int = 0, *, allowlist=None, denylist=None,
                       allow_partial: bool = False):
        """Nearest neighbors of each row of queries, as one index over all the shards' points
        returns them: (ids int64 [n, k], scores float32 [n, k]). allowlist/denylist: ids or
        boolean masks, or allowlist= a filter from compile_filter(). allow_partial=True: a shard that is down is
        left out instead of failing the search, and a third value lists the shards that
        answered."""
        queries = as_float_matrix(queries, "queries", dim=self.dim, check_values=False)
        _core.check_rows(queries, self.distance_measure, "queries")
        filters = self._shard_filters(allowlist, denylist)
        num_threads = check_num_threads(num_threads)
        knobs = self._knobs
        total = self.size()
        k = knobs.config.num_neighbors if final_num_neighbors is None else final_num_neighbors
        k = check_k(k, total, "final_num_neighbors")
        if final_num_neighbors is None and pre_reorder_num_neighbors is None and leaves_to_search is None:
            leaves, pre, _ = knobs.default_knobs
        else:
            leaves, pre = knobs.knobs(k, leaves_to_search, pre_reorder_num_neighbors)
        pre = min(pre, max(total, 1))
        filtered = allowlist is not None or denylist is not None
        shards = range(self.num_shards)
        answered = set(shards)
        allowed = total
        if filtered:
            counts = self._call([(s, "allowed_count", (filters["allowlist"], filters["denylist"])) for s in shards],
                                allow_partial=allow_partial)
            answered &= set(counts)
            allowed = int(sum(counts.values()))
        nq = len(queries)
        ids = np.full((nq, k), -1, np.int64)
        raw = np.full((nq, k), -np.inf, np.float32)
        if allowed > 0 and nq > 0:
            has_rows = knobs.config.reorder is not None
            slots = int(sum(status["slots"] for status in self._statuses))
            exact, plan_leaves = _core.plan_search(self.num_leaves, self.dim, self._num_blocks, slots, filtered,
                                                   allowed, total, has_rows, leaves, pre)
            rows = np.arange(nq)
            if exact:
                ids, raw, got = self._exact(queries, rows, k, filters, allow_partial)
            else:
                ids, raw, got = self._partitioned(queries, plan_leaves, pre, k, filters, num_threads,
                                                  allow_partial)
            answered &= got
            short = np.flatnonzero((ids >= 0).sum(axis=1) < min(k, allowed))
            if len(short) and not exact:
                # As one index does: queries whose leaves held fewer than k allowed points.
                if has_rows:
                    more_ids, more_raw, got = self._exact(queries[short], short, k, filters, allow_partial)
                else:
                    more_ids, more_raw, got = self._partitioned(queries[short], self.num_leaves, pre, k, filters,
                                                                num_threads, allow_partial)
                ids[short], raw[short] = more_ids, more_raw
                answered &= got
        scores = _core.raw_to_metric(queries, raw, self.distance_measure)
        if allow_partial:
            return ids, scores, sorted(answered)
        return ids, scores

    def _partitioned(self, queries, leaves: int, pre: int, k: int, filters: dict, num_threads: int,
                     allow_partial: bool, by_approx: bool = False):
        """(ids, raw scores, shards that answered) of the leaves' candidates, merged (by_approx:
        the best k by AH score, with their AH scores)."""
        filter_args = (filters["allowlist"], filters["denylist"])
        if self.num_shards == 1 and not by_approx:
            # One shard holds every leaf: it chooses them and finishes the search itself.
            every = np.arange(len(queries))
            return self._gather(len(queries), k, pre, [(0, every, np.ones(len(every), bool),
                                                        (queries, None, leaves, pre, k, True, False, *filter_args))],
                                num_threads, allow_partial)
        probe_leaves, probe_scores = self._skeleton.choose_leaves(queries, leaves, num_threads=num_threads)
        # The queries go to the object store once, whatever number of shards read them.
        shared = _ray.ray().put(queries) if self.num_shards > 1 else queries
        parts = []
        for shard in range(self.num_shards):
            if self._owner is None:  # random split: every shard holds part of every leaf
                rows, probes = None, (probe_leaves, probe_scores)
                finish = np.zeros(len(queries), bool)
            else:
                mine = self._owner[probe_leaves] == shard
                rows = np.flatnonzero(mine.any(axis=1))
                if len(rows) == 0:
                    continue
                probes = (np.where(mine, probe_leaves, -1)[rows], probe_scores[rows])
                # A query whose leaves all lie on this shard is finished there.
                finish = mine[rows].all(axis=1) & (not by_approx)
            parts.append((shard, np.arange(len(queries)) if rows is None else rows, finish,
                          (shared, rows, probes, pre, k, finish, False, *filter_args)))
        return self._gather(len(queries), k, pre, parts, num_threads, allow_partial, by_approx)

    def _exact(self, queries, rows, k: int, filters: dict, allow_partial: bool):
        """(ids, raw scores, shards that answered) of an exact search over every shard."""
        every = np.arange(len(queries))
        finish = np.full(len(queries), self.num_shards == 1)
        parts = [(shard, every, finish, (queries, None, None, k, k, finish, True, filters["allowlist"],
                                         filters["denylist"]))
                 for shard in range(self.num_shards)]
        return self._gather(len(queries), k, k, parts, 0, allow_partial)

    def _gather(self, nq: int, k: int, pre: int, parts: list, num_threads: int, allow_partial: bool,
                by_approx: bool = False):
        """Runs the shards' parts [(shard, rows, finish per row, search_part's args)] and puts
        their answers together: the finished rows as they are, the others merged (each point
        once, ties by insertion number). Returns (ids [nq, k], raw [nq, k], shards that
        answered or had no part)."""
        results = self._call([(shard, "search_part", args) for shard, _, _, args in parts],
                             allow_partial=allow_partial)
        ids = np.full((nq, k), -1, np.int64)
        raw = np.full((nq, k), -np.inf, np.float32)
        unfinished = np.zeros(nq, bool)
        rest_of = {}
        for shard, rows, finish, _ in parts:
            if shard not in results:
                continue
            done_ids, done_raw = results[shard][:2]
            ids[rows[finish]], raw[rows[finish]] = done_ids, done_raw
            rest_of[shard] = rows[~finish]
            unfinished[rest_of[shard]] = True
        merged = np.flatnonzero(unfinished)
        if len(merged):
            position = np.full(nq, -1, np.int64)
            position[merged] = np.arange(len(merged))
            candidates = {shard: results[shard][2:] for shard in rest_of}
            cand_ids, numbers, approx, exact = _side_by_side(
                len(merged), candidates, {shard: position[rows] for shard, rows in rest_of.items()})
            ids[merged], raw[merged] = _core.merge_candidates(cand_ids, approx, approx if by_approx else exact, pre,
                                                              k, num_threads, keys=numbers)
        return ids, raw, set(results) | (set(range(self.num_shards)) - {part[0] for part in parts})

    # ---- the tuner's view of the internals (QuantizedSearcher's, over all the shards) ----

    def leaf_order(self, queries, *, num_threads: int = 0) -> np.ndarray:
        """Every leaf by its exact centroid score for each query, best first (the skeleton's)."""
        return self._skeleton.leaf_order(queries, num_threads=num_threads)

    def leaves_of(self, ids) -> np.ndarray:
        """The two leaves holding each point: int32 [len(ids), 2], -1 where a point has no
        second copy or is not held. Their order is not promised: a built index lists them
        in leaf order, a point placed by upsert its primary leaf first."""
        ids = np.ascontiguousarray(ids, dtype=np.int64).ravel()
        answers = self._call([(s, "leaves_of", (ids,)) for s in range(self.num_shards)])
        out = np.full((len(ids), 2), -1, np.int32)
        guest_leaf = np.full(len(ids), -1, np.int32)
        for shard in range(self.num_shards):
            leaves, own = answers[shard]
            out[own] = leaves[own]
            guest = ~own & (leaves[:, 0] >= 0)
            guest_leaf[guest] = leaves[guest, 0]  # a guest's one copy here is its SOAR copy
        fill = (out[:, 0] >= 0) & (out[:, 1] < 0)
        out[fill, 1] = guest_leaf[fill]
        return out

    def leaf_slots(self) -> np.ndarray:
        """Code slots per leaf over all the shards: int64 [num_leaves]."""
        answers = self._call([(s, "leaf_slots", ()) for s in range(self.num_shards)])
        return np.sum([answers[s] for s in range(self.num_shards)], axis=0)

    def ah_candidates(self, queries, leaves_to_search: int, count: int, *, num_threads: int = 0):
        """(ids int64 [nq, count], AH scores) of the best `count` AH candidates of exactly the best
        `leaves_to_search` leaves, best first (QuantizedSearcher.ah_candidates, over the shards)."""
        queries = as_float_matrix(queries, "queries", dim=self.dim, check_values=False)
        count = check_k(count, max(1, self.size()), "count")
        leaves = check_k(leaves_to_search, self.num_leaves, "leaves_to_search")
        ids, approx, _ = self._partitioned(queries, leaves, count, count, {"allowlist": None, "denylist": None},
                                           check_num_threads(num_threads), False, by_approx=True)
        return ids, _core.raw_to_metric(queries, approx, self.distance_measure)

    def stage_times(self, queries, final_num_neighbors=None, *, leaves_to_search=None,
                    pre_reorder_num_neighbors=None) -> dict:
        """Seconds per stage searching `queries` one by one (QuantizedSearcher.stage_times): each
        stage at its slowest shard (shards run side by side on their nodes), and the total the
        sharded search's own, one query per call (the coordinator and the round trips included)."""
        queries = as_float_matrix(queries, "queries", dim=self.dim, check_values=False)
        k = check_k(self.config.num_neighbors if final_num_neighbors is None else final_num_neighbors, self.size(),
                    "final_num_neighbors")
        leaves, pre = self._knobs.knobs(k, leaves_to_search, pre_reorder_num_neighbors)
        shard_pre = max(pre, k) if self.config.reorder is not None else None
        answers = self._call([(s, "stage_times", (queries, min(k, max(1, self._statuses[s]["size"])), leaves,
                                                  shard_pre))
                              for s in range(self.num_shards)])
        times = {key: max(answers[s][key] for s in answers) for key in ("centroids", "lut", "scan", "reorder")}
        start = time.perf_counter()
        for q in queries:
            self.search(q, k, pre if self.config.reorder is not None else None, leaves)
        times["total"] = max(time.perf_counter() - start, sum(times.values()))
        return times

    def ids(self) -> np.ndarray:
        """The ids held, shard after shard."""
        answers = self._call([(s, "own_ids", ()) for s in range(self.num_shards)])
        return np.concatenate([answers[s] for s in range(self.num_shards)])

    def vectors(self, ids) -> np.ndarray:
        """The vectors of these ids as the reorder copies hold them: float32 [len(ids), d]."""
        if self.config.reorder is None:
            raise ValueError("this index keeps no reorder copy to read vectors from")
        ids = check_ids(ids)
        held = self._held(ids)
        if not held.any(axis=0).all():
            raise ValueError(f"id {int(ids[~held.any(axis=0)][0])} is not in the index")
        out = np.empty((len(ids), self.dim), np.float32)
        home = held.argmax(axis=0)
        answers = self._call([(s, "vectors", (ids[home == s],)) for s in range(self.num_shards) if (home == s).any()])
        for shard, rows in answers.items():
            out[home == shard] = rows
        return out

    # ---- updates ------------------------------------------------------------------------

    def contains(self, ids):
        """Whether each id is held by some shard: a bool array (a bool for one scalar id)."""
        scalar = np.ndim(ids) == 0
        checked = check_ids(np.asarray([ids]) if scalar else ids, "id" if scalar else "ids")
        held = self._held(checked)
        return bool(held.any(axis=0)[0]) if scalar else held.any(axis=0)

    def __contains__(self, id_) -> bool:
        return self.contains(id_)

    def _held(self, ids: np.ndarray) -> np.ndarray:
        """bool [num_shards, len(ids)]: which shard holds which id."""
        results = self._call([(s, "contains", (ids,)) for s in range(self.num_shards)])
        return np.stack([results[s] for s in range(self.num_shards)]) if len(ids) else \
            np.zeros((self.num_shards, 0), bool)

    def _apply(self, calls: list) -> None:
        """Update calls, logged for replay after a restart."""
        results = self._call(calls)
        for shard, name, args in calls:
            self._replay[shard].append((name, args))
            self._statuses[shard] = results[shard]

    def check_upsert(self, ids, vectors) -> None:
        """Raises the error upsert(ids, vectors) would raise, and changes nothing."""
        self._skeleton.check_upsert(ids, vectors)

    def upsert(self, ids, vectors, *, num_threads: int = 0) -> None:
        """Adds points, or replaces the points with these ids: placed once here, exactly as
        one index places them, each copy sent to the shard of its leaf."""
        with self._update_lock:
            checked = self._skeleton._upsert_arguments(ids, vectors, num_threads)
            if checked is None:
                return
            ids, x, num_threads = checked
            state = self._skeleton._state
            placement = place_in_index(state.config, state.arrays, x, num_threads,
                                       rows_dtype=rows_dtype_to_add(state.config, state.arrays, x))
            numbers = np.arange(self._next_number, self._next_number + len(ids), dtype=np.int64)
            parts = split(placement, ids, numbers, self.num_shards, self._owner)
            self._apply([(s, "replace", (ids, parts[s])) for s in range(self.num_shards)])
            self._next_number += len(ids)

    def delete(self, ids) -> None:
        """Removes points by id, all or none: an id no shard holds raises ValueError and
        nothing is deleted."""
        ids = check_ids(ids)
        if len(ids) == 0:
            return
        with self._update_lock:
            held = self._held(ids)
            missing = ids[~held.any(axis=0)]
            if missing.size:
                raise not_held_error(missing, ids.size)
            # Every shard: a SOAR copy may sit on a shard other than the point's own.
            self._apply([(s, "delete", (ids,)) for s in range(self.num_shards)])

    # ---- saving -----------------------------------------------------------------------

    def save(self, path) -> None:
        """Writes the index atomically to directory `path`: the coordinator's part (config,
        leaf owners, the trained skeleton) and one subdirectory per shard, each written by
        its actor (so `path` must be reachable from every node: one machine, or a shared
        file system) and each a complete annlib index (annlib.load opens one alone).
        Updates wait until it is written; afterwards a shard that dies is restarted from it."""
        path = Path(path).absolute()
        with self._update_lock:
            ray = _ray.ray()
            names = [shard_directory(s) for s in range(self.num_shards)]
            subindexes = {"skeleton": self._skeleton,
                          **{name: _RemoteSave(ray, self._actors[s]) for s, name in enumerate(names)}}
            arrays = {"leaf_owner": self._owner if self._owner is not None else np.zeros(0, np.int32)}
            save_index(path, self._config_json(), arrays, __version__, subindexes=subindexes)
            self._sources = [{"path": str(path / name)} for name in names]
            self._replay = [[] for _ in self._actors]

    def _config_json(self) -> str:
        """The coordinator's part; the index's config (search defaults included) is the
        skeleton's, saved with it."""
        return json.dumps({"kind": FORMAT_KIND, "mode": self._mode, "num_shards": self.num_shards,
                           "next_insertion_number": self._next_number}, indent=2, sort_keys=True)

    # ---- health ---------------------------------------------------------------------------

    def health(self) -> dict:
        """One index's health() report over all the shards (size, deletes awaiting
        compaction, additions since training, the leaves' balance, rebalance_recommended),
        and per shard: whether its actor answers, whether it can be restarted, its size,
        guests and deletes awaiting compaction, its process and node; and how even the
        shards are (largest over mean). The leaves' figures count the shards that answered;
        a deleted SOAR point held by two shards awaits compaction on both (counted twice)."""
        results = self._call([(s, "health", ()) for s in range(self.num_shards)], allow_partial=True)
        shards, leaf_live, added, deleted = [], np.zeros(self.num_leaves, np.int64), 0, 0
        for s in range(self.num_shards):
            report = dict(results.get(s) or {})
            if report:
                leaf_live += report.pop("leaf_live")
                added += report.pop("added") - report["guests"]  # a shard holds only points added to it
                deleted += report["deleted_pending_compaction"]
            shards.append({"shard": s, "alive": bool(report), "restartable": self._sources[s] is not None,
                           **report})
        baseline = self._skeleton._state.arrays.get("leaf_cv_at_training")
        index = health_report({"size": self.size(), "rows": self.size() + deleted, "added": added,
                               "leaf_live": leaf_live},
                              float(np.asarray(baseline)[0]) if baseline is not None else None)
        sizes = np.array(self.shard_sizes(), np.float64)
        return {**index, "num_shards": self.num_shards, "mode": self._mode,
                "shard_size_max_over_mean": float(sizes.max() / sizes.mean()) if sizes.mean() > 0 else 0.0,
                "shards": shards}

    def shutdown(self) -> None:
        """Stops the shards' actors (the index is gone unless it was saved)."""
        ray = _ray.ray()
        for actor in self._actors:
            ray.kill(actor)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if "Error" in line] or text.splitlines() or [type(exc).__name__]
    return lines[-1].strip()[:300]


def _side_by_side(nq: int, results: dict, rows_of: dict):
    """The shards' candidates side by side per query: (ids, insertion numbers, approx,
    reordered), [nq, total width] each."""
    width = max(1, sum(results[shard][0].shape[1] for shard in results))
    ids = np.full((nq, width), -1, np.int64)
    numbers = np.full((nq, width), -1, np.int64)
    approx = np.full((nq, width), -np.inf, np.float32)
    exact = np.full((nq, width), -np.inf, np.float32)
    column = 0
    for shard, (shard_ids, shard_numbers, shard_approx, shard_exact) in results.items():
        rows, w = rows_of[shard], shard_ids.shape[1]
        ids[rows, column:column + w] = shard_ids
        numbers[rows, column:column + w] = shard_numbers
        approx[rows, column:column + w] = shard_approx
        exact[rows, column:column + w] = shard_exact
        column += w
    return ids, numbers, approx, exact


class _RemoteSave:
    """A shard as save_index's subindex: its actor writes it."""

    def __init__(self, ray, actor):
        self._ray, self._actor = ray, actor

    def save(self, path) -> None:
        self._ray.get(self._actor.save.remote(str(path)))


def shard_directory(shard: int) -> str:
    return f"shard_{shard:04d}"


def load(path, *, actor_options: dict | None = None, shard_threads: int = 0) -> ShardedSearcher:
    """A sharded index saved by ShardedSearcher.save: the coordinator here, one actor per
    shard loading its directory (so `path` must be reachable from every node)."""
    path = Path(path).absolute()
    config_json, arrays, _ = load_index(path, mmap=False, verify=True)
    try:
        config = json.loads(config_json)
        if not isinstance(config, dict) or config.get("kind") != FORMAT_KIND:
            raise ValueError("not a sharded index")
        mode, num_shards = config["mode"], int(config["num_shards"])
        next_number = int(config["next_insertion_number"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} does not hold a sharded annlib index ({exc})") from exc
    if mode not in MODES or num_shards < 1:
        raise ValueError(f"{path}/config.json is invalid: mode {mode!r}, {num_shards} shards")
    skeleton = load_single(path / "skeleton", mmap=False, verify=True)
    if not isinstance(skeleton, QuantizedSearcher):
        raise ValueError(f"{path}/skeleton is not a quantized index")
    owner = np.asarray(arrays["leaf_owner"]) if mode == "leaf" else None
    if owner is not None and (owner.shape != (skeleton.num_leaves,) or owner.min() < 0 or owner.max() >= num_shards):
        raise ValueError(f"{path}: leaf_owner does not give each of {skeleton.num_leaves} leaves a shard "
                         f"in [0, {num_shards})")
    ray = _ray.ensure_started()
    sources = [{"path": str(path / shard_directory(s))} for s in range(num_shards)]
    actors = [actor_class(actor_options).remote(source, shard_threads) for source in sources]
    statuses = ray.get([actor.status.remote() for actor in actors])
    return ShardedSearcher(skeleton, owner, actors, statuses, mode=mode, sources=sources, next_number=next_number,
                           actor_options=actor_options, shard_threads=shard_threads)
