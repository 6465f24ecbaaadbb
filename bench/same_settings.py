"""annlib and ScaNN built with the same settings and searched at the same knobs, paired.

The run tables compare each system at its own best settings. This answers the narrower
question: given exactly ScaNN's configuration (its leaves, spherical k-means, SOAR lambda,
2 dims per block, anisotropic threshold, reorder copy), is annlib's engine faster at the same
work? Both are built once in one process; each (leaves, reorder) point is timed for both in
alternating rounds (best kept), with each system's recall at that point.

    python bench/same_settings.py ../shared/datasets/words-100k-384-angular.hdf5 -k 10 \
        --points 6/30,13/30,30/100
    python bench/same_settings.py ../shared/datasets/words-100k-384-angular.hdf5 -k 100 \
        --points 18/200,42/200,90/400
"""
from __future__ import annotations

import argparse
import sys

from annlib.benchmarks.algorithms import FAMILIES, missing_module
from annlib.benchmarks.paired import timed_qps
from annlib.benchmarks.recall import knn_recall, metric_distances
from annlib.benchmarks.runner import load_dataset


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--points", default="6/30,13/30,30/100", help="leaves/reorder pairs, comma-separated")
    parser.add_argument("--num-leaves", type=int, default=600)
    parser.add_argument("--soar-lambda", type=float, default=1.0, help="ScaNN's recommendation (default 1.0)")
    parser.add_argument("--threshold", type=float, default=0.2, help="anisotropic threshold (0: none)")
    parser.add_argument("--spherical", type=int, default=1, help="spherical k-means leaves (1) or not (0)")
    parser.add_argument("--reorder-dtype", default="float32", choices=("float32", "bfloat16", "int8"))
    parser.add_argument("--mode", choices=("single", "batched"), default="single")
    parser.add_argument("--threads", type=int, default=2, help="threads of the builds and of batched calls")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--single-queries", type=int, default=1000)
    args = parser.parse_args(argv)
    if missing_module("scann"):
        print("error: ScaNN is not installed (pip install \"annlib[bench]\")", file=sys.stderr)
        return 2
    try:
        points = [tuple(int(v) for v in p.split("/")) for p in args.points.split(",")]
        if not points or any(len(p) != 2 or min(p) < 1 for p in points):
            raise ValueError
    except ValueError:
        print(f"error: --points takes leaves/reorder pairs of positive integers, got {args.points!r}",
              file=sys.stderr)
        return 2
    _, metric, measure, train, queries, true_distances, _ = load_dataset(args.dataset, 2000, args.k)
    single = queries[:args.single_queries]
    build = dict(num_leaves=args.num_leaves, threshold=args.threshold or None, soar_lambda=args.soar_lambda,
                 spherical=bool(args.spherical), reorder_dtype=args.reorder_dtype)
    systems = {"annlib": FAMILIES["annlib"][0](measure, args.threads, dims_per_block=2, **build),
               "scann": FAMILIES["scann"][0](measure, args.threads, **build)}
    for name, wrapper in systems.items():
        print(f"building {name} {build}", file=sys.stderr, flush=True)
        wrapper.fit(train)

    recalls, best = {}, {}
    for name, wrapper in systems.items():
        for leaves, reorder in points:
            wrapper.set_query_arguments(leaves=leaves, reorder=reorder)
            ids = wrapper.batch_query(queries, args.k)
            recalls[name, leaves, reorder] = knn_recall(true_distances, metric_distances(metric, queries, train, ids),
                                                        args.k)
    for r in range(args.rounds):
        for i, (leaves, reorder) in enumerate(points):
            order = ("annlib", "scann") if (r + i) % 2 == 0 else ("scann", "annlib")
            for name in order:
                wrapper = systems[name]
                wrapper.set_query_arguments(leaves=leaves, reorder=reorder)
                qps = timed_qps(wrapper, args.mode, queries, single, args.k)
                best[name, leaves, reorder] = max(best.get((name, leaves, reorder), 0.0), qps)
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)

    print(f"k={args.k}, {args.mode}, {build}, 2 dims per block, best of {args.rounds} alternating rounds\n")
    print(f"| leaves / reorder | recall@{args.k} annlib | recall@{args.k} ScaNN | annlib QPS | ScaNN QPS | ratio |")
    print("|---|---|---|---|---|---|")
    for leaves, reorder in points:
        a, s = best["annlib", leaves, reorder], best["scann", leaves, reorder]
        print(f"| {leaves} / {reorder} | {recalls['annlib', leaves, reorder]:.4f} | "
              f"{recalls['scann', leaves, reorder]:.4f} | {a:,.0f} | {s:,.0f} | {a / s:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
