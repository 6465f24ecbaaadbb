"""Live updates and filtered search, measured on one dataset in one run.

    python bench/bench_updates.py ../shared/datasets/words-100k-384-angular.hdf5 [--threads 2]

1. Updates: an index is built on the first two thirds of the points, then
   - upsert throughput: one call of 10,000 new points, and 100 calls of 100;
   - the other new points are upserted too (+50% in all), and recall@10 and
     QPS are compared with a fresh build on all the points at the same
     settings (same leaf count, AH, SOAR and reorder knobs);
   - delete throughput: one call of 10,000 ids, and 100 calls of 100 (on a
     copy of the grown index, so the comparison above is untouched).
2. Filtered search on the fresh build: random allowlists keeping 1%, 10% and
   50% of the ids; recall@10 against exact filtered ground truth, and QPS
   (batched on --threads threads, and one query per call, with the id list and
   with it compiled once by compile_filter) beside unfiltered QPS.
Timings are best of repeats; compare figures within one run only.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

import annlib
from annlib.datasets import ground_truth, read_hdf5
from annlib.recall_math import id_recall
from annlib.defaults import SOAR_LAMBDA, num_leaves_for

K = 10


def best_time(fn, min_total=0.5, min_runs=2):
    best, total, runs = float("inf"), 0.0, 0
    while runs < min_runs or total < min_total:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, total, runs = min(best, dt), total + dt, runs + 1
    return best


def qps(searcher, queries, threads, **kwargs):
    batched = len(queries) / best_time(lambda: searcher.search_batched(queries, num_threads=threads, **kwargs))
    single_q = queries[:1000]

    def one_by_one():
        for q in single_q:
            searcher.search(q, **kwargs)
    single = len(single_q) / best_time(one_by_one)
    return batched, single


def build(train, measure, ids, num_leaves, leaves, reorder, dpb, threshold):
    t0 = time.perf_counter()
    s = (annlib.builder(train, K, measure, ids=ids).tree(num_leaves, leaves, soar_lambda=SOAR_LAMBDA)
         .score_ah(dpb, anisotropic_quantization_threshold=threshold).reorder(reorder).build(progress=False))
    return s, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--queries", type=int, default=2000)
    args = ap.parse_args()
    ds = read_hdf5(args.dataset)
    measure = "cosine" if ds.metric == "angular" else "squared_l2"
    train = np.ascontiguousarray(ds.train, dtype=np.float32)
    queries = np.ascontiguousarray(ds.test[:args.queries], dtype=np.float32)
    truth = np.asarray(ds.neighbors[:args.queries, :K])
    n, d = train.shape
    num_leaves = num_leaves_for(n)
    leaves, reorder = max(1, num_leaves // 20), 200
    dpb, threshold = 2, (None if measure == "squared_l2" else (0.2 if d <= 128 else 0.1))
    print(f"{os.path.basename(args.dataset)}: n={n} d={d} {measure}; {num_leaves} leaves, search {leaves}, "
          f"reorder {reorder}, SOAR {SOAR_LAMBDA}, AH {dpb} dims/block threshold {threshold}; "
          f"{args.threads} threads batched", flush=True)

    # 1. Updates.
    n0 = 2 * n // 3
    grown, base_build_s = build(train[:n0], measure, None, num_leaves, leaves, reorder, dpb, threshold)
    print(f"base index on {n0} points built in {base_build_s:.1f} s", flush=True)
    new_ids = np.arange(n0, n)
    t0 = time.perf_counter()
    grown.upsert(new_ids[:10_000], train[n0:n0 + 10_000])
    one_call = 10_000 / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i in range(100):
        lo = n0 + 10_000 + 100 * i
        grown.upsert(np.arange(lo, lo + 100), train[lo:lo + 100])
    small_calls = 10_000 / (time.perf_counter() - t0)
    rest = n0 + 20_000
    t0 = time.perf_counter()
    grown.upsert(np.arange(rest, n), train[rest:n])
    rest_rate = (n - rest) / (time.perf_counter() - t0)
    print(f"upsert: one call of 10,000: {one_call:,.0f} points/s; 100 calls of 100: {small_calls:,.0f} points/s; "
          f"the other {n - rest:,}: {rest_rate:,.0f} points/s", flush=True)
    health = grown.health()
    print(f"health after +{(n - n0) / n0:.0%}: " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                                             for k, v in health.items()), flush=True)

    fresh, fresh_build_s = build(train, measure, None, num_leaves, leaves, reorder, dpb, threshold)
    rows = []
    for name, s in (("after +50% upserts", grown), ("fresh build", fresh)):
        ids = s.search_batched(queries, num_threads=args.threads)[0]
        rec = id_recall(ids, truth, 10)
        batched, single = qps(s, queries, args.threads)
        rows.append((name, rec, batched, single))
    print(f"fresh build on {n} points: {fresh_build_s:.1f} s")
    print("| index | recall@10 | batched QPS | single QPS |\n|---|---|---|---|")
    for name, rec, b, si in rows:
        print(f"| {name} | {rec:.4f} | {b:,.0f} | {si:,.0f} |")
    print(f"recall difference (upserted - fresh): {rows[0][1] - rows[1][1]:+.4f}; QPS ratio batched "
          f"{rows[0][2] / rows[1][2]:.2f}, single {rows[0][3] / rows[1][3]:.2f}", flush=True)
    # Deletes run on two loaded copies of the grown index.
    with tempfile.TemporaryDirectory() as tmp:
        grown.save(os.path.join(tmp, "grown"))
        copy_a = annlib.load(os.path.join(tmp, "grown"), mmap=False)
        copy_b = annlib.load(os.path.join(tmp, "grown"), mmap=False)
    rng = np.random.default_rng(0)
    victims = rng.permutation(n)[:20_000]
    t0 = time.perf_counter()
    copy_a.delete(victims[:10_000])
    delete_one = 10_000 / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i in range(100):
        copy_b.delete(victims[10_000 + 100 * i:10_000 + 100 * (i + 1)])
    delete_small = 10_000 / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    copy_a.compact()
    compact_s = time.perf_counter() - t0
    after = copy_a.search_batched(queries, num_threads=args.threads)[0]
    assert not np.isin(after, victims[:10_000]).any(), "a deleted id came back"
    print(f"delete: one call of 10,000: {delete_one:,.0f} ids/s; 100 calls of 100: {delete_small:,.0f} ids/s; "
          f"compact after 10,000 deletes: {compact_s * 1e3:.0f} ms", flush=True)
    t0 = time.perf_counter()
    grown.rebalance()
    rebalance_s = time.perf_counter() - t0
    rec = id_recall(grown.search_batched(queries, num_threads=args.threads)[0], truth, 10)
    print(f"rebalance() of the grown index: {rebalance_s:.1f} s, recall@10 after: {rec:.4f}", flush=True)

    # 2. Filtered search on the fresh build.
    unfiltered_b, unfiltered_s = qps(fresh, queries, args.threads)
    print(f"\nunfiltered: batched {unfiltered_b:,.0f} QPS, single {unfiltered_s:,.0f} QPS")
    print("| allowed | recall@10 vs exact filtered | batched QPS | vs unfiltered | single QPS | vs unfiltered "
          "| single QPS, compiled filter | vs unfiltered |\n|---|---|---|---|---|---|---|---|")
    for share in (0.01, 0.10, 0.50):
        allowed = np.sort(rng.choice(n, int(share * n), replace=False))
        exact = allowed[ground_truth(train[allowed], queries, K, measure)[0]]  # exact filtered top k
        ids = fresh.search_batched(queries, num_threads=args.threads, allowlist=allowed)[0]
        assert np.isin(ids[ids >= 0], allowed).all(), "a filtered-out id came back"
        rec = id_recall(ids, exact, 10)
        b, si = qps(fresh, queries, args.threads, allowlist=allowed)
        compiled = fresh.compile_filter(allowlist=allowed)
        _, sc = qps(fresh, queries, args.threads, allowlist=compiled)
        print(f"| {share:.0%} | {rec:.4f} | {b:,.0f} | {b / unfiltered_b:.2f} | {si:,.0f} | {si / unfiltered_s:.2f} "
              f"| {sc:,.0f} | {sc / unfiltered_s:.2f} |", flush=True)


if __name__ == "__main__":
    main()
