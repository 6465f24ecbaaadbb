"""How good are annlib.tune()'s settings? Tuned vs an exhaustive grid vs ScaNN's autopilot formula.

    python bench/bench_tune.py ../shared/datasets/words-100k-384-angular.hdf5 --soar-lambda 1.5 \\
        --dims-per-block 4 --threshold 0.1
    python bench/bench_tune.py ../shared/datasets/sift-150k-128-euclidean.hdf5
    python bench/bench_tune.py ../shared/datasets/words-100k-384-angular.hdf5 --defaults -k 100

--defaults builds what annlib.builder(train, k, measure) gets from annlib.defaults
(leaves, spherical k-means, code width for k, SOAR where it pays, threshold), as
autopilot() does before it tunes; the other build flags are then ignored.

Builds one index, then for each target recall: tunes on the first half of the
test queries (the tuner holds out a fifth of those itself), and measures on
the other half, which neither the tuner nor its validation saw: recall@k and
single-thread QPS of the tuned settings; the best single-thread QPS any point
of an exhaustive grid over the same two knobs reaches at or above the recall
the tuned settings measured, on the same queries (the two finalists are then
timed again alternately, best of 3 each, for the ratio); and the settings of ScaNN's open-source
autopilot formula (reorder = max(2k, 100 sqrt(k)), leaves = 42 * 2^log10(L/42)).
"""
from __future__ import annotations

import argparse
import math
import sys
import time

import annlib
from annlib.datasets import read_hdf5
from annlib.recall_math import id_recall
from annlib import defaults
from annlib.tuning.ranks import leaf_grid

TARGETS = (0.90, 0.95, 0.99)
REORDERS = (10, 15, 20, 30, 40, 60, 80, 100, 150, 200, 300, 500, 800, 1200, 2000)


def measure(searcher, queries, truth, k, leaves, reorder):
    """(recall@k, single-thread QPS) of one setting, one query per call."""
    knobs = dict(final_num_neighbors=k, leaves_to_search=int(leaves), pre_reorder_num_neighbors=int(reorder))
    ids = searcher.search_batched(queries, **knobs)[0]
    recall = id_recall(ids, truth, k)
    for q in queries[:20]:
        searcher.search(q, **knobs)
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        for q in queries:
            searcher.search(q, **knobs)
        best = min(best, time.perf_counter() - start)
    return recall, len(queries) / best


def head_to_head(searcher, queries, truth, k, first, second, rounds=3):
    """Best single-thread QPS of two settings timed alternately (noise hits both alike)."""
    best = [0.0, 0.0]
    for _ in range(rounds):
        for i, (l, r) in enumerate((first, second)):
            best[i] = max(best[i], measure(searcher, queries, truth, k, l, r)[1])
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--soar-lambda", type=float)
    parser.add_argument("--dims-per-block", type=int, default=2)
    parser.add_argument("--threshold", type=float)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--defaults", action="store_true",
                        help="build with annlib.defaults' choices for the data and k (autopilot's build)")
    args = parser.parse_args(argv)
    k = args.k
    ds = read_hdf5(args.dataset)
    measure_name = ds.distance_measure
    half = len(ds.test) // 2
    tune_q, eval_q = ds.test[:half], ds.test[half:]
    tune_truth, eval_truth = ds.neighbors[:half, :k], ds.neighbors[half:, :k]
    start = time.perf_counter()
    if args.defaults:
        searcher = defaults.configure(annlib.builder(ds.train, k, measure_name), measure_name).build(
            num_threads=args.threads, progress=False)
    else:
        leaves = defaults.num_leaves_for(len(ds.train))
        searcher = (annlib.builder(ds.train, k, measure_name).tree(leaves, leaves // 20, soar_lambda=args.soar_lambda)
                    .score_ah(args.dims_per_block, anisotropic_quantization_threshold=args.threshold).reorder(100)
                    .build(num_threads=args.threads, progress=False))
    tree, ah = searcher.config.tree, searcher.config.score_ah
    leaves = tree.num_leaves
    print(f"{ds.name}: {leaves} leaves (spherical {tree.spherical}), dims_per_block {ah.dimensions_per_block}, "
          f"threshold {ah.anisotropic_quantization_threshold}, SOAR {tree.soar_lambda}; built in "
          f"{time.perf_counter() - start:.1f} s; tuning on {half} queries, measuring on {len(eval_q)} others",
          file=sys.stderr)

    reorders = [r for r in REORDERS if k <= r <= max(800, 20 * k)]  # 10-800 at k=10, 100-2000 at k=100
    grid = [(int(l), r) for l in leaf_grid(leaves) if l <= leaves // 2 for r in reorders]
    points = []
    for i, (l, r) in enumerate(grid, 1):
        points.append((l, r, *measure(searcher, eval_q, eval_truth, k, l, r)))
        if i % 40 == 0:
            print(f"  grid {i}/{len(grid)}", file=sys.stderr)

    formula_reorder = max(2 * k, int(round(100 * math.sqrt(k))))
    formula_leaves = max(1, int(round(42 * 2 ** math.log10(leaves / 42))))
    f_recall, f_qps = measure(searcher, eval_q, eval_truth, k, formula_leaves, formula_reorder)

    print(f"\n## {ds.name}, k={k}, single-thread QPS measured on {len(eval_q)} queries the tuner never saw")
    print("| target | tuning s | tuned leaves / reorder | predicted recall | tuner's held-out recall | "
          "measured recall | tuned QPS | grid best QPS at that recall (leaves / reorder) | tuned / grid |")
    print("|---|---|---|---|---|---|---|---|---|")
    for target in TARGETS:
        result = annlib.tune(searcher, tune_q, target_recall=target, ground_truth=tune_truth,
                             num_threads=args.threads, progress=False)
        p = result.params
        recall, qps = measure(searcher, eval_q, eval_truth, k, p.leaves_to_search, p.pre_reorder_num_neighbors)
        eligible = [pt for pt in points if pt[2] >= recall]   # the grid at the tuned settings' own recall
        best = max(eligible, key=lambda pt: pt[3]) if eligible else None
        if best is not None:  # the two finalists again, timed alternately
            qps, grid_qps = head_to_head(searcher, eval_q, eval_truth, k,
                                         (p.leaves_to_search, p.pre_reorder_num_neighbors), best[:2])
        grid_text = f"{grid_qps:,.0f} ({best[0]} / {best[1]})" if best else "- (not reached)"
        ratio = f"{qps / grid_qps:.2f}" if best else "-"
        print(f"| {target:.2f} | {result.tuning_seconds:.1f} | {p.leaves_to_search} / {p.pre_reorder_num_neighbors} "
              f"| {result.predicted_recall:.4f} | {result.heldout_recall:.4f} | {recall:.4f} | {qps:,.0f} "
              f"| {grid_text} | {ratio} |")
    # The formula is one fixed point: tune for the recall it reaches and compare speed there.
    matched = annlib.tune(searcher, tune_q, target_recall=min(f_recall, 0.999), ground_truth=tune_truth,
                          num_threads=args.threads, progress=False).params
    m_recall, _ = measure(searcher, eval_q, eval_truth, k, matched.leaves_to_search, matched.pre_reorder_num_neighbors)
    m_qps, f_qps = head_to_head(searcher, eval_q, eval_truth, k,
                                (matched.leaves_to_search, matched.pre_reorder_num_neighbors),
                                (formula_leaves, formula_reorder))
    print(f"\nScaNN autopilot formula: leaves {formula_leaves}, reorder {formula_reorder}: recall {f_recall:.4f}, "
          f"{f_qps:,.0f} QPS; annlib.tune for that recall: leaves {matched.leaves_to_search}, reorder "
          f"{matched.pre_reorder_num_neighbors}: recall {m_recall:.4f}, {m_qps:,.0f} QPS ({m_qps / f_qps:.2f}x)")
    print("cost model (us):", ", ".join(f"{key} {v:.4g}" for key, v in result.cost_model.items()))


if __name__ == "__main__":
    main()
