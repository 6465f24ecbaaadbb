"""One shard of a sharded index: an ordinary quantized index holding the points of
the leaves it owns (every leaf's center is kept, the other leaves are empty). The
coordinator (searcher.py) runs each Shard as a Ray actor; a saved shard is a
normal annlib index directory, loadable where it lives with annlib.load.

A SOAR point whose two leaves sit on two shards is held by both; the shard of its
secondary leaf holds it as a "guest" and leaves it out of its counts (size(), the
points a filter allows), so that the shards' counts add up to the points of the
index, as a search plans by them. The guests' ids, and each point's insertion
number (ordering.py), are saved beside the shard's arrays."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .. import _core
from ..config import IndexConfig
from ..filters import id_filter
from ..indexes import load_single
from ..io import load_index
from ..quantized import QuantizedSearcher
from .ordering import InsertionOrder

GUESTS = "shard_guest_ids"
ORDER_IDS, ORDER_NUMBERS = "shard_order_ids", "shard_order_numbers"


@dataclass(frozen=True)
class FilterKey:
    """Stands for a filter compiled on the shard (Shard.compile_filter) in place of an
    allowlist: a search names it instead of shipping the ids every call."""
    key: str


def _listed(ids: np.ndarray, values) -> np.ndarray:
    """Which of ids an allowlist/denylist (ids or a boolean mask over ids) lists."""
    listed_ids, mask = id_filter(values, "filter")
    if listed_ids is not None:
        return np.isin(ids, listed_ids)
    inside = ids < len(mask)
    out = np.zeros(len(ids), bool)
    out[inside] = mask[ids[inside]] != 0
    return out


def _narrow(values: np.ndarray) -> np.ndarray:
    """int64 ids or numbers as int32 when they fit: half the bytes back to the coordinator."""
    if values.size == 0 or values.max() < 2**31:
        return values.astype(np.int32)
    return values


def _ties(ids: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Per row of a best-first answer, whether two of its results score the same."""
    both = (ids[:, 1:] >= 0) & (ids[:, :-1] >= 0)
    return np.any(both & (raw[:, 1:] == raw[:, :-1]), axis=1)


def _node_id() -> str | None:
    """The Ray node this shard runs on (None outside Ray)."""
    try:
        import ray
    except ImportError:  # pragma: no cover - a shard used without Ray
        return None
    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


class Shard:
    """The actor's state. Every method returns plain data (arrays, numbers, dicts)."""

    def __init__(self, source: dict, num_threads: int = 0, arrays: dict | None = None):
        # source: {"path": a saved shard's directory} or {"config": json} of a trained,
        # empty index whose arrays are `arrays`
        if "path" in source:
            config_json, saved, manifest = load_index(source["path"], mmap=False, verify=True)
            extra = {name: np.asarray(saved.pop(name, np.empty(0, np.int64)), np.int64)
                     for name in (GUESTS, ORDER_IDS, ORDER_NUMBERS)}
            searcher = load_single(source["path"], loaded=(config_json, saved, manifest))
            guests = extra[GUESTS]
            order = InsertionOrder(extra[ORDER_IDS], extra[ORDER_NUMBERS])
        else:
            searcher = QuantizedSearcher(IndexConfig.from_json(source["config"]), dict(arrays))
            guests = np.empty(0, np.int64)
            order = InsertionOrder()
        if not isinstance(searcher, QuantizedSearcher):
            raise ValueError("a shard holds a quantized index")
        self.searcher = searcher
        self.guests = np.unique(guests)  # sorted
        self.order = order
        self.num_threads = num_threads
        # key -> (compiled filter, allowlist, denylist): the lists count the allowed guests
        self.filters: dict = {}

    def status(self) -> dict:
        """What the coordinator plans by: the points that are this shard's own (guests left
        out) and the code slots of its leaves."""
        return {"size": self.searcher.size() - len(self.guests), "slots": self.searcher.total_slots(),
                "guests": len(self.guests), "pid": os.getpid(), "node": _node_id()}

    def add(self, part: dict) -> dict:
        """Adds (or replaces) the placed points of one part (routing.split)."""
        if len(part["ids"]):
            self.searcher.upsert_placed(part["ids"], part["upsert"])
            self.order.set(part["ids"], part["numbers"])
            kept = self.guests[~np.isin(self.guests, part["ids"])]
            self.guests = np.union1d(kept, part["guests"])
        return self.status()

    def replace(self, ids: np.ndarray, part: dict) -> dict:
        """An upsert of `ids`: the ones this shard holds but no longer should (their leaves
        are on other shards now) are deleted, then its part is added."""
        held = ids[self.searcher.contains(ids)]
        self._remove(held[~np.isin(held, part["ids"])])
        return self.add(part)

    def delete(self, ids: np.ndarray) -> dict:
        """Deletes the ids of `ids` this shard holds (the coordinator checked that every one
        is held by some shard)."""
        self._remove(ids[self.searcher.contains(ids)])
        return self.status()

    def _remove(self, held: np.ndarray) -> None:
        if len(held):
            self.searcher.delete(held)
            self.guests = self.guests[~np.isin(self.guests, held)]

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """Which ids this shard holds as its own (guests are another shard's)."""
        return self.searcher.contains(ids) & ~np.isin(ids, self.guests)

    def compile_filter(self, key: str, allowlist=None, denylist=None) -> int:
        """Compiles a filter once for many searches, which name it by FilterKey(key); it
        follows this shard's later updates on its own. Returns the own points it allows."""
        self.filters[key] = (self.searcher.compile_filter(allowlist, denylist), allowlist, denylist)
        return self.allowed_count(FilterKey(key))

    def drop_filter(self, key: str) -> None:
        self.filters.pop(key, None)

    def _compiled(self, ref: FilterKey):
        try:
            return self.filters[ref.key]
        except KeyError:
            raise ValueError("this compiled filter is not on the shard (it was dropped, or the index it was "
                             "compiled for was reloaded): compile it again") from None

    def allowed_count(self, allowlist=None, denylist=None) -> int:
        """The shard's own points a filter (lists, masks or a FilterKey) allows."""
        if isinstance(allowlist, FilterKey):
            compiled, allowlist, denylist = self._compiled(allowlist)
            count = self.searcher.allowed_count(compiled)
        else:
            count = self.searcher.allowed_count(allowlist, denylist)
        if len(self.guests):
            guests = self.guests
            allowed = np.ones(len(guests), bool) if allowlist is None else _listed(guests, allowlist)
            if denylist is not None:
                allowed &= ~_listed(guests, denylist)
            count -= int(allowed.sum())
        return count

    def search_part(self, queries, rows, probes, wanted: int, k: int, finish, exact: bool = False,
                    allowlist=None, denylist=None):
        """This shard's part of a search of queries[rows] (all of them: rows None).

        probes: (leaves, scores) per row as the coordinator chose them (leaf -1: another
        shard's), an int (choose that many leaves here: a shard that owns every leaf), or
        None with exact=True (every allowed point). finish: per row, or one bool for all,
        whether every leaf of that query lies here, so that this shard's candidates are all
        of them and it answers the `k` best itself (the coordinator only places them).

        Returns (ids int64 [f, k], raw [f, k]) of the f finished rows, then (ids, insertion
        numbers, approx, reordered) [n - f, w] of the other rows' `wanted` best candidates
        (QuantizedSearcher.shard_candidates), in row order each."""
        if rows is not None:
            queries = queries[rows]
        if isinstance(allowlist, FilterKey):
            allowlist = self._compiled(allowlist)[0]
        if isinstance(probes, (int, np.integer)):
            probes = self.searcher.choose_leaves(queries, int(probes), num_threads=self.num_threads)
        leaves, scores = (None, None) if probes is None else probes
        search = dict(num_threads=self.num_threads, allowlist=allowlist, denylist=denylist)
        finish = np.broadcast_to(np.asarray(finish, bool), (len(queries),))
        done, rest = np.flatnonzero(finish), np.flatnonzero(~finish)
        final_ids = np.full((len(done), k), -1, np.int64)
        final_raw = np.full((len(done), k), -np.inf, np.float32)
        to_merge = done  # finished rows answered by merging their candidates, as the others are
        if len(done) and not exact:
            # A finished query searched as one index searches it (its top k + 1 by reordered
            # score): the same answer wherever no two of those scores tie, since only a tie
            # needs the insertion numbers that break ties as one index does.
            top_ids, _, top_raw, _ = self.searcher.shard_candidates(
                queries[done], leaves[done], scores[done], wanted, top_k=k + 1, **search)
            width = min(k, top_ids.shape[1])
            final_ids[:, :width], final_raw[:, :width] = top_ids[:, :width], top_raw[:, :width]
            to_merge = done[_ties(top_ids, top_raw)]
        need = np.union1d(to_merge, rest)
        if len(need):
            ids, approx, reordered, _ = self.searcher.shard_candidates(
                queries[need], None if exact else leaves[need], None if exact else scores[need], wanted,
                exact=exact, **search)
            numbers = self.order.lookup(ids)
            if (numbers[ids >= 0] < 0).any():
                raise RuntimeError("a shard holds a point without an insertion number (its bookkeeping is damaged)")
            merge = np.searchsorted(need, to_merge)
            # One shard's candidates are distinct already: no deduplication.
            merged = _core.merge_candidates(ids[merge], approx[merge], reordered[merge], wanted, k, self.num_threads,
                                            keys=numbers[merge], distinct=True)
            at = np.searchsorted(done, to_merge)
            final_ids[at], final_raw[at] = merged
            rest_at = np.searchsorted(need, rest)  # the other rows' places among those searched
        else:
            ids = numbers = np.empty((0, 0), np.int64)
            approx = reordered = np.empty((0, 0), np.float32)
            rest_at = rest
        # int32 ids where they fit: a batch of 1,000 queries' top 10 then stays under Ray's 100 KB
        # for answers sent inline (1-2 ms less than through the object store, measured).
        return (_narrow(final_ids), final_raw, _narrow(ids[rest_at]), _narrow(numbers[rest_at]), approx[rest_at],
                reordered[rest_at])

    # ---- the tuner's view (QuantizedSearcher's, over this shard's points) ----

    def leaves_of(self, ids: np.ndarray):
        """(leaves [len(ids), 2] of the copies held here, which ids are this shard's own); ids
        may repeat."""
        unique, where = np.unique(ids, return_inverse=True)
        return self.searcher.leaves_of(ids), self.contains(unique)[where.ravel()]

    def leaf_slots(self) -> np.ndarray:
        return self.searcher.leaf_slots()

    def stage_times(self, queries, k: int, leaves: int, pre_reorder: int) -> dict:
        return self.searcher.stage_times(queries, k, leaves_to_search=leaves, pre_reorder_num_neighbors=pre_reorder)

    def own_ids(self) -> np.ndarray:
        ids = self.searcher.ids()
        return ids[~np.isin(ids, self.guests)]

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        return self.searcher.vectors(ids)

    def health(self) -> dict:
        """The shard's part of the index's health: its status, the deletes it awaits
        compacting, and the engine's per-leaf counts (live copies, guests' included) and
        additions since training, which the coordinator sums into one index's report."""
        stats = self.searcher._state.index.stats()
        return {**self.status(), "deleted_pending_compaction": int(stats["rows"]) - int(stats["size"]),
                "added": int(stats["added"]), "leaf_live": np.asarray(stats["leaf_live"])}

    def save(self, path: str) -> None:
        order_ids, order_numbers = self.order.arrays(keep=self.searcher.ids())
        self.searcher.save(path, extra_arrays={GUESTS: self.guests, ORDER_IDS: order_ids,
                                               ORDER_NUMBERS: order_numbers})
