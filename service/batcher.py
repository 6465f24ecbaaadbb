"""Coalesces concurrent single-query Search calls into search_batched calls.

A call hands its query to a queue and waits; a few batch threads each take
everything queued (up to max_batch), group it by index and knobs, and search
each group as one batch, which scores the queries together (shared centroid
and code scans) instead of one by one. Nothing waits for company: a lone
query is searched as soon as a batch thread is free, so batches form only
when calls arrive faster than they are answered, which is when they help.
"""
from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

import numpy as np


class SearchBatcher:
    def __init__(self, threads: int, max_batch: int = 256):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._max_batch = max_batch
        self._threads = [threading.Thread(target=self._run, name=f"annlib-batch-{i}", daemon=True)
                         for i in range(threads)]
        for t in self._threads:
            t.start()

    def search(self, searcher, query: np.ndarray, k, leaves, pre) -> Future:
        """A Future of (ids, scores) of searcher.search(query, k, pre, leaves)."""
        done: Future = Future()
        self._queue.put((searcher, (k, leaves, pre), query, done))
        return done

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            items = [first]
            while len(items) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # for this thread's next round
                    break
                items.append(item)
            groups: dict = {}
            for item in items:
                groups.setdefault((id(item[0]), item[1]), []).append(item)
            for group in groups.values():
                _search_group(group)


def _search_group(group) -> None:
    if len(group) == 1:
        _search_one(group[0])
        return
    searcher, (k, leaves, pre) = group[0][0], group[0][1]
    try:
        ids, scores = searcher.search_batched(np.stack([item[2] for item in group]), k, pre, leaves, num_threads=1)
    except Exception:  # one bad query must not fail the others: each gets its own answer or error
        for item in group:
            _search_one(item)
        return
    for item, row_ids, row_scores in zip(group, ids, scores):
        item[3].set_result((row_ids, row_scores))


def _search_one(item) -> None:
    searcher, (k, leaves, pre), query, done = item
    try:
        result = searcher.search(query, k, pre, leaves)
    except Exception as exc:
        done.set_exception(exc)
    else:
        done.set_result(result)
