"""A sharded index (annlib.distributed) against one index at the same knobs, in one run.

    python bench/bench_distributed.py ../shared/datasets/sift-150k-128-euclidean.hdf5 [--shards 1 2 4]
    python bench/bench_distributed.py ../shared/datasets/sift-150k-128-euclidean.hdf5 --copies 7 --shards 1 2

On a local Ray instance on this machine's cores: one index is built, then sharded
indexes of the same stages with 1, 2 and 4 shards by leaf, and 4 shards by random
split. For each: recall@10 against the file's exact neighbours, whether the results
equal one index's, and the time of search_batched over batches of --batch queries
(--repeats rounds, each timing one index then the sharded one: the median QPS, and the
median of the rounds' ratios to one index's time: the cost of routing and
merging when every shard shares this machine's cores), and how many shards a query's
leaves touch on average. Compare figures within one run.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import numpy as np

import annlib
from annlib.datasets import ground_truth, read_hdf5
from annlib.recall_math import id_recall

K = 10


def stages(data, leaves: int, search: int, reorder: int):
    return (annlib.builder(data.train, K, data.distance_measure).tree(leaves, search, soar_lambda=1.0)
            .score_ah(2, 0.2).reorder(reorder))


def once(fn, queries, batch: int) -> float:
    """Seconds fn takes over all the queries, in batches of `batch`."""
    start = time.perf_counter()
    for i in range(0, len(queries), batch):
        fn(queries[i:i + batch])
    return time.perf_counter() - start


def paired(one, sharded, queries, batch: int, repeats: int) -> tuple[float, float]:
    """(median seconds of sharded over all the queries, median ratio to one index's time):
    each round times one index, then the sharded one, so that a machine whose speed drifts
    (a shared host) slows both sides of a ratio alike."""
    rounds = [(once(one, queries, batch), once(sharded, queries, batch)) for _ in range(repeats)]
    return float(np.median([b for _, b in rounds])), float(np.median([b / a for a, b in rounds]))


def enlarged(data, copies: int, noise: float):
    """data with its train rows and copies-1 noisy copies of them, and their exact neighbours."""
    rng = np.random.default_rng(0)
    train = np.concatenate([data.train] + [data.train + rng.normal(0, noise, data.train.shape).astype(np.float32)
                                           for _ in range(copies - 1)])
    neighbors, distances = ground_truth(train, data.test, K, data.metric)
    return dataclasses.replace(data, train=train, neighbors=neighbors, distances=distances)


def fan_out(sharded, queries, search: int) -> float:
    """Shards a query's leaves touch, on average (every shard, random split)."""
    if sharded.leaf_owner is None:
        return float(sharded.num_shards)
    leaves, _ = sharded._skeleton.choose_leaves(queries, search)
    return float(np.mean([len(np.unique(row)) for row in sharded.leaf_owner[leaves]]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--leaves", type=int, default=0, help="num_leaves (default: about sqrt(n))")
    parser.add_argument("--search", type=int, default=0, help="leaves searched (default: num_leaves / 20)")
    parser.add_argument("--reorder", type=int, default=100)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cpus", type=int, default=os.cpu_count())
    parser.add_argument("--shard-threads", type=int, default=0,
                        help="threads per shard's search (default 0: all cores)")
    parser.add_argument("--copies", type=int, default=1,
                        help="search the train rows and COPIES-1 copies of them moved by Gaussian noise "
                             "(--noise), exact neighbours recomputed: a larger set from a small one")
    parser.add_argument("--noise", type=float, default=8.0, help="noise of --copies (default 8: SIFT's scale)")
    parser.add_argument("--repeat-queries", type=int, default=1,
                        help="search the test queries this many times over (for --batch beyond their number)")
    args = parser.parse_args()

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    import annlib.distributed as dist

    data = read_hdf5(args.dataset)
    if args.copies > 1:
        data = enlarged(data, args.copies, args.noise)
    n = len(data.train)
    leaves = args.leaves or int(round(np.sqrt(n) / 10) * 10)
    search = args.search or max(1, leaves // 20)
    queries = np.ascontiguousarray(np.tile(data.test, (args.repeat_queries, 1)), dtype=np.float32)
    truth = np.tile(data.neighbors[:, :K], (args.repeat_queries, 1))
    print(f"{args.dataset}: n={n:,} d={data.train.shape[1]} {data.metric}; {leaves} leaves, {search} searched, "
          f"SOAR, AH 2 dims/block, reorder {args.reorder}; {len(queries)} queries in batches of {args.batch}; "
          f"{args.cpus} CPUs; simd {annlib.simd_level()}")
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1",
             configure_logging=False)
    try:
        single = stages(data, leaves, search, args.reorder).build(progress=False)
        expected, _ = single.search_batched(queries)
        base = float(np.median([once(single.search_batched, queries, args.batch) for _ in range(args.repeats)]))
        print(f"{'index':<22}{'recall@10':>10}{'same':>6}{'QPS':>9}{'time/one':>10}{'shards/query':>14}  shard sizes")
        print(f"{'one index':<22}{id_recall(expected, truth, K):>10.4f}{'':>6}{len(queries) / base:>9.0f}"
              f"{1.0:>10.3f}")
        runs = [(count, "leaf") for count in args.shards] + [(max(args.shards), "random")]
        for count, mode in runs:
            start = time.perf_counter()
            sharded = dist.build(stages(data, leaves, search, args.reorder), num_shards=count, mode=mode,
                                 shard_threads=args.shard_threads, progress=False)
            built = time.perf_counter() - start
            try:
                ids, _ = sharded.search_batched(queries)
                elapsed, ratio = paired(single.search_batched, sharded.search_batched, queries, args.batch,
                                        args.repeats)
                label = f"{count} shard{'s' if count > 1 else ''} by {mode}"
                print(f"{label:<22}{id_recall(ids, truth, K):>10.4f}{str(bool((ids == expected).all())):>6}"
                      f"{len(queries) / elapsed:>9.0f}{ratio:>10.3f}{fan_out(sharded, queries, search):>14.2f}"
                      f"  {sharded.shard_sizes()} (built in {built:.1f} s)")
            finally:
                sharded.shutdown()
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
