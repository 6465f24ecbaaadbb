"""A single query's time against a roofline of its work, stage by stage, on this CPU.

    python bench/roofline.py ../shared/datasets/sift-150k-128-euclidean.hdf5 --search 10 --reorder 40
    python bench/roofline.py ../shared/datasets/words-100k-384-angular.hdf5 --search 16 --reorder 100

Builds one quantized index (SOAR, AH 2 dims/block, float32 reorder copy), then on one
thread:

1. measures this CPU's rates: the LUT16 scan kernel on codes of the index's width held in
   the cache (ns per code block per point), the int8 dense kernel that scores the
   centroids (ps per multiply-add), one core's streaming read bandwidth from memory, and
   the time to read one row at a random address of an array beyond the cache (plain loads,
   rows prefetched ahead as the re-ranking does, into L2 then L1, no kernel of ours:
   `_core.testing.read_rows`), for the reorder rows' width and the centers' (d float32);
2. counts each query's work: centroid multiply-adds (leaves x d) and the screened center
   rows rescored from float32, code blocks x points in the leaves it scans (and their code
   bytes, streamed from memory), rows reordered;
3. prints, per stage, the work at those rates (the roofline) beside the measured time
   (stage_times, and search() one query per call), and their ratio. The scan's bound is the
   larger of its compute and its code bytes at the streaming bandwidth; random rows are
   bound by the random-row time (the memory system's parallelism over its latency), which
   streaming bandwidth would understate; the streaming-bandwidth reorder bound is printed
   beside it.

Compare within one run: the machine's speed drifts between runs on shared hosts.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import annlib
from annlib import _core
from annlib.datasets import read_hdf5
from annlib.recall_math import id_recall

K = 10


def best(fn, repeats: int = 7) -> float:
    """Fastest of `repeats` calls, seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def lut16_ns_per_block_point(num_blocks: int) -> float:
    """The scan kernel's rate on 20k points (codes of a few MB: in the cache)."""
    rng = np.random.default_rng(0)
    n = 20_000
    codes = _core.testing.Lut16Codes(rng.integers(0, 16, (n, num_blocks)).astype(np.uint8))
    lut = rng.standard_normal((num_blocks, 16)).astype(np.float32)
    return best(lambda: codes.topk(lut, 100, None, "")) * 1e9 / (n * num_blocks)


def int8_ps_per_mac(d: int) -> float:
    """The int8 dense kernel's rate (centroid scoring's), one thread, batched queries."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20_000, d)).astype(np.float32)
    q = rng.standard_normal((64, d)).astype(np.float32)
    s = annlib.builder(x, 10, "dot_product").score_brute_force(dtype="int8").build()
    return best(lambda: s.search_batched(q, num_threads=1)) * 1e12 / (len(x) * d * len(q))


def read_gb_per_s(total_mb: int = 1024) -> float:
    """One core's streaming read bandwidth from memory (an array beyond the last-level
    cache, reduced with SIMD: NumPy's max)."""
    big = np.ones(total_mb * 2**20 // 4, np.float32)
    return big.nbytes / best(big.max, 3) / 1e9


def random_row_ns(row_bytes: int, total_mb: int = 512, count: int = 20_000) -> float:
    """ns to read one row of row_bytes at a random address of a total_mb array (beyond the
    last-level cache), one thread, plain loads, rows prefetched ahead as the re-ranking does."""
    rows = np.ones((total_mb * 2**20 // row_bytes, row_bytes // 4), np.float32)
    rng = np.random.default_rng(0)
    # Fresh rows for every repetition: a second pass over the same 20k rows (5 MB of 256-byte
    # rows) would find them in the cache and read 2.3x too fast.
    repeats = 5
    id_sets = iter([rng.integers(0, len(rows), count) for _ in range(repeats)])
    return best(lambda: _core.testing.read_rows(rows, next(id_sets)), repeats) * 1e9 / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--leaves", type=int, default=0, help="num_leaves (default: about sqrt(n))")
    parser.add_argument("--search", type=int, default=10, help="leaves searched")
    parser.add_argument("--reorder", type=int, default=40, help="pre_reorder_num_neighbors")
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()

    data = read_hdf5(args.dataset)
    n, d = data.train.shape
    leaves = args.leaves or int(round(np.sqrt(n) / 10) * 10)
    queries = np.ascontiguousarray(data.test[:args.queries], dtype=np.float32)
    index = (annlib.builder(data.train, K, data.distance_measure).tree(leaves, args.search, soar_lambda=1.0)
             .score_ah(2, 0.2).reorder(args.reorder).build(progress=False))
    num_blocks = int(np.asarray(index._state.arrays["meta"])[2])
    held = np.asarray(index._state.arrays["rows"])
    row_bytes = int(held.reshape(n, -1).shape[1] * held.itemsize)
    center_bytes = d * 4
    screened = min(leaves, args.search + max(8, args.search // 4))  # rescored centers (partitioned_search.cpp)

    ids, _ = index.search_batched(queries)
    recall = id_recall(ids, data.neighbors[:len(queries), :K], K)
    chosen, _ = index.choose_leaves(queries, args.search, num_threads=1)
    slots = index.leaf_slots()[chosen].sum(axis=1).mean()
    print(f"{args.dataset}: n={n:,} d={d}; {leaves} leaves, {args.search} searched, {num_blocks} blocks, "
          f"reorder {args.reorder} rows of {row_bytes} B ({held.dtype}); recall@10 {recall:.4f}; "
          f"simd {annlib.simd_level()}, one thread")

    ns_block = lut16_ns_per_block_point(num_blocks)
    ps_mac = int8_ps_per_mac(d)
    bandwidth = read_gb_per_s()
    row_ns = random_row_ns(row_bytes)
    center_ns = row_ns if center_bytes == row_bytes else random_row_ns(center_bytes)
    print(f"rates: LUT16 {ns_block:.4f} ns per block per point; int8 dense {ps_mac:.2f} ps per multiply-add; "
          f"memory read {bandwidth:.1f} GB/s streaming; a random row {row_ns:.0f} ns ({row_bytes} B), "
          f"{center_ns:.0f} ns ({center_bytes} B)")

    nq = len(queries)
    times = {key: value / nq * 1e6 for key, value in index.stage_times(queries).items()}
    single = []
    for q in queries:
        start = time.perf_counter()
        index.search(q)
        single.append(time.perf_counter() - start)
    search_us = float(np.median(single)) * 1e6

    code_bytes = slots * num_blocks / 2  # 4-bit codes
    model = {"centroids": leaves * d * ps_mac * 1e-6 + screened * center_ns * 1e-3, "lut": 0.0,
             "scan": max(slots * num_blocks * ns_block, code_bytes / bandwidth) * 1e-3,
             "reorder": args.reorder * row_ns * 1e-3}
    model["total"] = sum(model.values())
    work = {"centroids": f"{leaves} x {d} MACs + {screened} rows", "lut": f"{num_blocks} x 16 entries",
            "scan": f"{slots:,.0f} slots x {num_blocks} blocks", "reorder": f"{args.reorder} rows x {row_bytes} B"}
    print(f"{'stage':<10}{'work per query':>30}{'roofline us':>13}{'measured us':>13}{'ratio':>8}")
    for stage in ("centroids", "lut", "scan", "reorder", "total"):
        ratio = f"{times[stage] / model[stage]:.1f}x" if model[stage] > 0 else ""
        print(f"{stage:<10}{work.get(stage, ''):>30}{model[stage]:>13.1f}{times[stage]:>13.1f}{ratio:>8}")
    streamed = args.reorder * row_bytes / bandwidth * 1e-3
    print(f"{'(reorder at streaming bandwidth: ' + format(streamed, '.1f') + ' us)':<40}")
    print(f"{'search()':<10}{'one query per call, median':>30}{model['total']:>13.1f}{search_us:>13.1f}"
          f"{search_us / model['total']:>7.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
