"""`annlib demo`: the headline index next to exact search, on the bundled SIFT-20k subset.

Builds the quantized index (k-means leaves, anisotropic 4-bit AH codes scanned with
LUT16, exact reordering), tunes its search knobs for recall targets with annlib.tune
(on queries sampled from the database, not the test queries), and measures recall@k and
speed on the 500 bundled test queries next to exact brute force and brute force's
lighter variants. A variant that is not faster than exact search on this CPU is marked
so: which ones are depends on the CPU (bfloat16 and int8 run on AMX tiles where present).
"""
from __future__ import annotations

import time

import numpy as np

from . import _core, builder, simd_level
from .recall_math import id_recall
from .tuning import tune

TUNED_RECALLS = (0.95, 0.99)


def load_demo_data():
    """(train float32 [20000,128], test float32 [500,128], neighbors int64 [500,100])."""
    from .datasets import sift_20k

    data = sift_20k()
    return data.train, data.test, data.neighbors


BATCH_REPEATS = 5  # a batch of 500 takes 2-25 ms; shared hosts swing 20-40% between calls


def _batch_qps(searcher, queries, k, repeats: int = BATCH_REPEATS):
    """(ids, queries per second): one search_batched call over every query, all cores, best of `repeats`."""
    best, ids = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        ids, _ = searcher.search_batched(queries, k, num_threads=0)
        best = min(best, time.perf_counter() - start)
    return ids, len(queries) / best


def single_query_us(searcher, queries, k) -> float:
    """Median microseconds of search() of one query on one thread."""
    times = []
    for q in queries:
        start = time.perf_counter()
        searcher.search(q, k)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e6


def _indexes(train, k, out):
    """(label, build seconds, searcher) of every row of the table, exact search first."""
    def timed(make):
        start = time.perf_counter()
        searcher = make()
        return time.perf_counter() - start, searcher

    exact_s, exact = timed(lambda: builder(train, k, "squared_l2").score_brute_force().build())
    yield "exact brute force, float32", exact_s, exact
    leaves = 2 * int(np.sqrt(len(train)))  # about 2 sqrt(n) leaves, as annlib.defaults picks
    quantized_s, quantized = timed(lambda: builder(train, k, "squared_l2").tree(leaves, leaves // 10)
                                   .score_ah(2).reorder(4 * k).build(progress=False))
    for target in TUNED_RECALLS:
        start = time.perf_counter()
        # Tuned on database rows as queries (their nearest other points), so the test
        # queries below measure it as new queries would.
        result = tune(quantized, target_recall=target, k=k, progress=False)
        tune_s = time.perf_counter() - start
        out(f"  tuned for recall {target}: {result.params.leaves_to_search} of {leaves} leaves, "
            f"{result.params.pre_reorder_num_neighbors} candidates reordered ({tune_s:.1f} s)")
        tuned = quantized.with_simd_level(quantized.simd_level)  # a copy with its own defaults
        tuned.set_default_params(result.params)
        yield f"quantized + reorder, tuned {target}", quantized_s, tuned
    for label, kwargs in (("brute force, bfloat16", dict(dtype="bfloat16")),
                          ("brute force, int8", dict(dtype="int8")),
                          ("brute force, binned 0.9", dict(recall_target=0.9))):
        seconds, searcher = timed(lambda: builder(train, k, "squared_l2").score_brute_force(**kwargs).build())
        yield label, seconds, searcher


def run_demo(k: int = 10, out=print) -> list[dict]:
    train, test, truth = load_demo_data()
    if not 1 <= k <= truth.shape[1]:
        raise ValueError(f"-k must be between 1 and {truth.shape[1]} (the bundled ground truth's depth)")
    threads = _core.available_cores()
    amx = "AMX tiles for bfloat16/int8 batches" if _core.amx_usable() else "no AMX"
    out(f"annlib demo: SIFT-20k subset ({train.shape[0]:,} x {train.shape[1]}, squared L2), "
        f"{len(test)} test queries, k={k}")
    out(f"CPU: SIMD level {simd_level()}, {amx}, {threads} threads")
    out(f"batch QPS: all {len(test)} queries in one search_batched() call on every core (best of {BATCH_REPEATS}); "
        "1-query: median time of search() on one thread")
    rows = []
    lines = []
    exact_qps = None
    for label, build_s, searcher in _indexes(train, k, out):
        ids, qps = _batch_qps(searcher, test, k)
        exact_qps = exact_qps or qps
        row = {"index": label, "recall": id_recall(ids, truth, k), "qps": qps, "speedup": qps / exact_qps,
               "single_us": single_query_us(searcher, test, k), "build_s": build_s}
        rows.append(row)
        note = "" if row is rows[0] or row["speedup"] > 1.0 else "  not faster than exact here"
        lines.append(f"{label:<34}{row['recall']:>10.4f}{qps:>11,.0f}{row['speedup']:>9.2f}x"
                     f"{row['single_us']:>11.0f}{build_s:>9.2f}{note}")
    out(f"{'index':<34}{f'recall@{k}':>10}{'batch QPS':>11}{'vs exact':>10}{'1-query µs':>11}{'build s':>9}")
    for line in lines:
        out(line)
    return rows
