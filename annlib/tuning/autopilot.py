"""builder(...).autopilot(): the build annlib.defaults chooses for the data, then
annlib.tune for the target (with the given queries or a database sample). Registered
with the builder when this module is imported (the builder sits below tuning).

With exact_scores=False the re-ranking copy may then be narrowed: the float32 copy is
repacked in int8, else bfloat16, where the tuned settings' recall from it is at most
MAX_RECALL_LOSS below the float32 copy's (on the tuning queries, or a database sample). The
re-ranking reads a quarter or half of the bytes, which is most of a search's time at large
k (words-100k, k=100: 13,930 against 10,807 single queries a second, recall@100 0.9013
against 0.9014); the scores returned are then the narrower copy's."""
from __future__ import annotations

import dataclasses

import numpy as np

from ..builder import register_autopilot
from ..defaults import configure
from ..quantized import QuantizedSearcher
from ..quantized.reorder_copy import narrowed, stored_dtype
from ..recall_math import found_share
from .tune import _queries_and_truth, neighbours_but_own, tune

NARROWER = ("int8", "bfloat16")  # tried in this order: the fewest bytes first
MAX_RECALL_LOSS = 0.001          # recall a narrower copy may lose against the float32 one
CHECK_QUERIES = 1000             # queries (or database rows) the check searches


def build_with_autopilot(staged, options: dict, num_threads: int, progress: bool):
    """staged: a fresh Builder over the same data; options: what autopilot() was given."""
    searcher = configure(staged, staged.distance_measure, target_recall=options["target_recall"]).build(
        num_threads, progress)
    if searcher.config.kind == "brute_force":
        searcher.tune_result = None  # exact: nothing to tune
        return searcher
    # The builder's rows are the vectors of ids 0..n-1 only under default ids; else the tuner
    # reads them back from the index's float32 reorder copy.
    database = staged.database if staged._ids is None else None
    result = tune(searcher, options["queries"], target_recall=options["target_recall"],
                  max_latency_us=options["max_latency_us"], ground_truth=options["ground_truth"],
                  database=database, num_threads=num_threads, progress=progress,
                  recall_tolerance=options.get("recall_tolerance", 0.0))
    searcher.set_default_params(result.params)
    if not options.get("exact_scores", True):
        searcher = narrowest_copy(searcher, options["queries"], options["ground_truth"], database, num_threads,
                                  options.get("recall_tolerance", 0.0))
    searcher.tune_result = result
    return searcher


def narrowest_copy(searcher: QuantizedSearcher, queries=None, ground_truth=None, database=None,
                   num_threads: int = 0, recall_tolerance: float = 0.0) -> QuantizedSearcher:
    """The searcher with its float32 re-ranking copy repacked in the narrowest type (int8,
    then bfloat16) whose recall at the searcher's default settings is at most
    MAX_RECALL_LOSS below the float32 copy's, on `queries` (with `ground_truth`, or exact
    neighbours computed over `database`) or on a database sample searched for the other
    points (recall counted as tune() counts it with `recall_tolerance`); the searcher itself
    where none is."""
    config = searcher.config
    if config.reorder is None or config.reorder.dtype != "float32":
        return searcher
    held = stored_dtype(config, searcher._arrays())
    k = config.num_neighbors
    if queries is not None:  # evenly spaced ones (a database sample is of that size already)
        every = max(1, len(queries) // CHECK_QUERIES)
        queries = np.asarray(queries)[::every]
        ground_truth = None if ground_truth is None else np.asarray(ground_truth)[::every]
    sample, truth, own, _ = _queries_and_truth(searcher, queries, ground_truth, database, k, 1, num_threads,
                                               recall_tolerance)
    float32_recall = found_share(_neighbours(searcher, sample, own, k, num_threads), truth, k)
    squared_l2 = config.distance_measure == "squared_l2"
    for dtype in NARROWER:
        if dtype == held:
            continue  # already held that narrow (float32 data bfloat16 holds exactly)
        arrays = narrowed(searcher._arrays(), searcher.dim, dtype, squared_l2, num_threads)
        # The config carries the tuned settings (set_default_params wrote them there).
        narrow = QuantizedSearcher(dataclasses.replace(config, reorder=dataclasses.replace(config.reorder, dtype=dtype)),
                                   arrays, simd_level=searcher.simd_level)
        if float32_recall - found_share(_neighbours(narrow, sample, own, k, num_threads), truth, k) <= MAX_RECALL_LOSS:
            return narrow
    return searcher


def _neighbours(searcher, queries, own, k: int, num_threads: int):
    """The k neighbours each query gets at the searcher's defaults; with `own` (the id
    each query is), that id left out."""
    if own is None:
        return searcher.search_batched(queries, num_threads=num_threads)[0]
    return neighbours_but_own(searcher, queries, own, k, num_threads=num_threads)


register_autopilot(build_with_autopilot)
