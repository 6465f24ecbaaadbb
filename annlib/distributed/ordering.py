"""Each point's insertion number: its place in the order one index would store it.

One index breaks ties between equal scores by storage order: rows in the order
points were added (a build's input order, then upserts, a replaced point moving
to the end), which compaction keeps. A shard's rows keep that order among its
own points, since the coordinator sends it updates in order; across shards the
coordinator numbers the points (build: input position; upsert: the next
numbers) and the merge breaks ties by these numbers, so that a sharded search
ties as one index does.

A shard maps its ids to their numbers with InsertionOrder: sorted runs of
(id, number), the newest first when looked up, merged into one now and then
(amortised: a run is merged once it is as large as the rest). Where the ids are
dense (the default 0..n-1, or close to it), a table indexed by id answers
instead: a gather rather than a binary search per candidate."""
from __future__ import annotations

import numpy as np

_MAX_RUNS = 16
# A table indexed by id is kept while the largest id is below this many times the ids
# held plus a constant (8 bytes per table entry).
_DENSE_FACTOR, _DENSE_SLACK = 4, 1 << 20


class InsertionOrder:
    def __init__(self, ids: np.ndarray | None = None, numbers: np.ndarray | None = None):
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # oldest first, each sorted by id
        self._table: np.ndarray | None = np.empty(0, np.int64)  # number by id (-1: none), or None
        self._count = 0  # ids set (an upper bound: replaced ones count again)
        if ids is not None and len(ids):
            self.set(ids, numbers)

    def set(self, ids: np.ndarray, numbers: np.ndarray) -> None:
        """The numbers of these ids from now on (replacing older ones)."""
        if len(ids) == 0:
            return
        ids = np.asarray(ids, np.int64)
        self._count += len(ids)
        if self._table is not None:
            top = int(ids.max()) + 1
            if top <= _DENSE_FACTOR * self._count + _DENSE_SLACK:
                if top > len(self._table):
                    grown = np.full(max(top, 2 * len(self._table)), -1, np.int64)
                    grown[:len(self._table)] = self._table
                    self._table = grown
                self._table[ids] = numbers
                return
            self._runs = [self._table_as_run()]
            self._table = None
        order = np.argsort(ids, kind="stable")
        self._runs.append((np.asarray(ids, np.int64)[order], np.asarray(numbers, np.int64)[order]))
        newest = len(self._runs[-1][0])
        older = sum(len(run[0]) for run in self._runs[:-1])
        if len(self._runs) > _MAX_RUNS or (len(self._runs) > 1 and newest >= older):
            self._runs = [self._merged()]

    def _table_as_run(self) -> tuple[np.ndarray, np.ndarray]:
        held = np.flatnonzero(self._table >= 0)
        return held.astype(np.int64), self._table[held]

    def _merged(self) -> tuple[np.ndarray, np.ndarray]:
        ids = np.concatenate([run[0] for run in reversed(self._runs)])  # newest first
        numbers = np.concatenate([run[1] for run in reversed(self._runs)])
        unique, first = np.unique(ids, return_index=True)  # the first occurrence is the newest
        return unique, numbers[first]

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """The number of each id (-1 where none was set; ids < 0 give -1)."""
        ids = np.asarray(ids, np.int64)
        if self._table is not None:
            inside = (ids >= 0) & (ids < len(self._table))
            return np.where(inside, self._table[np.where(inside, ids, 0)] if len(self._table) else -1, -1)
        out = np.full(ids.shape, -1, np.int64)
        todo = np.flatnonzero(ids.ravel() >= 0)
        flat_ids, flat_out = ids.ravel(), out.reshape(-1)
        for run_ids, run_numbers in reversed(self._runs):
            if len(todo) == 0:
                break
            wanted = flat_ids[todo]
            at = np.minimum(np.searchsorted(run_ids, wanted), len(run_ids) - 1)
            hit = run_ids[at] == wanted
            flat_out[todo[hit]] = run_numbers[at[hit]]
            todo = todo[~hit]
        return out

    def arrays(self, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ids, numbers), one entry per id, sorted by id; keep: only these ids (the ones
        still held)."""
        if self._table is not None:
            ids, numbers = self._table_as_run()
        elif not self._runs:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        else:
            self._runs = [self._merged()]
            ids, numbers = self._runs[0]
        if keep is not None:
            mask = np.isin(ids, keep)
            ids, numbers = ids[mask], numbers[mask]
        return ids, numbers
