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
(amortised: a run is merged once it is as large as the rest)."""
from __future__ import annotations

import numpy as np

_MAX_RUNS = 16


class InsertionOrder:
    def __init__(self, ids: np.ndarray | None = None, numbers: np.ndarray | None = None):
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # oldest first, each sorted by id
        if ids is not None and len(ids):
            self.set(ids, numbers)

    def set(self, ids: np.ndarray, numbers: np.ndarray) -> None:
        """The numbers of these ids from now on (replacing older ones)."""
        if len(ids) == 0:
            return
        order = np.argsort(ids, kind="stable")
        self._runs.append((np.asarray(ids, np.int64)[order], np.asarray(numbers, np.int64)[order]))
        newest = len(self._runs[-1][0])
        older = sum(len(run[0]) for run in self._runs[:-1])
        if len(self._runs) > _MAX_RUNS or (len(self._runs) > 1 and newest >= older):
            self._runs = [self._merged()]

    def _merged(self) -> tuple[np.ndarray, np.ndarray]:
        ids = np.concatenate([run[0] for run in reversed(self._runs)])  # newest first
        numbers = np.concatenate([run[1] for run in reversed(self._runs)])
        unique, first = np.unique(ids, return_index=True)  # the first occurrence is the newest
        return unique, numbers[first]

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """The number of each id (-1 where none was set; ids < 0 give -1)."""
        ids = np.asarray(ids, np.int64)
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
        if not self._runs:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        self._runs = [self._merged()]
        ids, numbers = self._runs[0]
        if keep is not None:
            mask = np.isin(ids, keep)
            ids, numbers = ids[mask], numbers[mask]
            self._runs = [(ids, numbers)]
        return ids, numbers
