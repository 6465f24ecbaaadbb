"""QPS at the recall frontier on a fine grid, paired: annlib+SOAR and ScaNN+SOAR built once per
reorder copy type in one process, each system's cheapest settings reaching each recall timed in
alternating rounds (best kept), so a shared host's drift hits all alike. Single queries (one per
call, one thread) by default; --mode batched times every query in one call on --threads.

    python bench/frontier.py ../shared/datasets/words-100k-384-angular.hdf5 -k 100
    python bench/frontier.py ../shared/datasets/words-100k-384-angular.hdf5 -k 100 --mode batched \
        --targets 0.90,0.95,0.99

bench/run.py's grid is coarse near the frontier (1.5k, 2k, 4k, 10k, 25k re-ranked) and builds float32
copies unless told; this is the close-up of one cell: every leaf count of --leaves against every
depth of --reorders, for annlib (600 leaves, 2 dims per block, SOAR lambda 1.5) and ScaNN
(600 leaves, SOAR lambda 1.0, spherical and k-means leaves), each with a float32, bfloat16 and
int8 re-ranking copy (--dtypes).
"""
from __future__ import annotations

import argparse
import sys
import time

from annlib.benchmarks.algorithms import FAMILIES
from annlib.benchmarks.recall import knn_recall, metric_distances
from annlib.benchmarks.runner import load_dataset


def systems(dtypes, num_leaves: int) -> dict:
    out = {}
    for dtype in dtypes:
        out[f"annlib+soar {dtype}"] = ("annlib", dict(num_leaves=num_leaves, dims_per_block=2, threshold=None,
                                                      soar_lambda=1.5, reorder_dtype=dtype))
        for spherical in (True, False):
            label = f"scann+soar{' spherical' if spherical else ''} {dtype}"
            out[label] = ("scann", dict(num_leaves=num_leaves, threshold=None, soar_lambda=1.0,
                                        spherical=spherical, reorder_dtype=dtype))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("-k", type=int, default=100)
    parser.add_argument("--num-leaves", type=int, default=600)
    parser.add_argument("--leaves", default="12,14,16,18,20,22,24,26,30,34,36,38,42")
    parser.add_argument("--reorders", default="150,200,250,300")
    parser.add_argument("--dtypes", default="float32,bfloat16,int8")
    parser.add_argument("--targets", default="0.90,0.95")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--single-queries", type=int, default=1000)
    parser.add_argument("--mode", choices=("single", "batched"), default="single")
    parser.add_argument("--threads", type=int, default=2, help="threads of the builds and of batched calls")
    args = parser.parse_args(argv)
    leaves = [int(v) for v in args.leaves.split(",")]
    reorders = [int(v) for v in args.reorders.split(",")]
    targets = [float(v) for v in args.targets.split(",")]
    _, metric, measure, train, queries, true_distances, _ = load_dataset(args.dataset, 2000, args.k)
    single = queries[:args.single_queries]

    built, recalls = {}, {}
    for label, (family, build) in systems(args.dtypes.split(","), args.num_leaves).items():
        wrapper = FAMILIES[family][0](measure, args.threads, **build)
        wrapper.fit(train)
        built[label] = wrapper
        for reorder in reorders:
            for leaf_count in leaves:
                wrapper.set_query_arguments(leaves=leaf_count, reorder=reorder)
                found = metric_distances(metric, queries, train, wrapper.batch_query(queries, args.k))
                recalls[(label, leaf_count, reorder)] = knn_recall(true_distances, found, args.k)
        print(f"built and swept {label}", file=sys.stderr, flush=True)

    # Each system's cheapest settings per target and depth: the fewest leaves reaching it.
    points = set()
    for target in targets:
        for label in built:
            for reorder in reorders:
                reaching = [n for n in leaves if recalls[(label, n, reorder)] >= target]
                if reaching:
                    points.add((label, min(reaching), reorder))
    points = sorted(points)
    best = {}
    for r in range(args.rounds):
        for point in (points if r % 2 == 0 else points[::-1]):
            wrapper = built[point[0]]
            wrapper.set_query_arguments(leaves=point[1], reorder=point[2])
            start = time.perf_counter()
            if args.mode == "batched":
                wrapper.batch_query(queries, args.k)
                timed = len(queries)
            else:
                for q in single:
                    wrapper.query(q, args.k)
                timed = len(single)
            best[point] = max(best.get(point, 0.0), timed / (time.perf_counter() - start))
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)

    for target in targets:
        print(f"recall@{args.k} >= {target:.2f}: {args.mode} QPS (leaves searched / re-ranked, recall)")
        fastest = {}
        for label in built:
            reached = sorted(((best[p], p) for p in points if p[0] == label and recalls[p] >= target), reverse=True)
            if reached:
                qps, (_, leaf_count, reorder) = reached[0]
                fastest[label] = qps
                print(f"  {label:32s} {qps:8,.0f}  ({leaf_count} / {reorder}, {recalls[reached[0][1]]:.4f})")
        ours = max((v for k, v in fastest.items() if k.startswith("annlib")), default=None)
        peer = max((v for k, v in fastest.items() if not k.startswith("annlib")), default=None)
        if ours and peer:
            print(f"  fastest annlib / fastest ScaNN: {ours / peer:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
