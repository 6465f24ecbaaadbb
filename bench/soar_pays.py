"""Does SOAR spilling pay on a dataset? A leaf-level test, without building indexes.

    python bench/soar_pays.py ../shared/datasets/sift-150k-128-euclidean.hdf5
    python bench/soar_pays.py ../shared/datasets/words-100k-384-angular.hdf5 --k 100

Trains the leaves annlib's defaults choose for the data (k-means, or spherical k-means
for cosine), takes sample rows as queries with their exact k nearest neighbours (the
row itself left out), and for each recall target prints how many points a query must
scan to find that share of its neighbours in the leaves it visits (best leaves first):
  - plain: a neighbour is found when its leaf is visited;
  - SOAR:  when its leaf or its SOAR leaf (lambda as given) is visited, and every
           leaf holds its spilled copies too (their count estimated on a sample).
The ratio SOAR / plain is the scan SOAR saves at equal leaf-level recall. Against
bench/run.py's QPS on the dev sets (AMD Zen 4, default lambda 1.5): words-100k, k=10:
0.28-0.40 here, SOAR 1.9-2.1x faster there; sift-150k, k=10: 0.80-0.92 here, SOAR
0.66-0.86x there; k=100: 0.89-0.91 here, SOAR 0.59-0.98x there but 1.14x single at
0.99; photo-SIFT 1.68M (bench/make_photo_sift.py), k=10: 0.80-0.89 here, SOAR 1.2-1.9x
there. SOAR's own costs (half the codes again, duplicates dropped, twice the candidates
kept) are about 20-25% at equal points scanned while the codes sit in the cache, so it
pays below a ratio of ~0.75 there, and below ~0.9 when the spilled codes exceed the
last-level cache (the scan then waits on memory): what soar_lambda="auto" decides by
(annlib/quantized/soar_choice.py, the mean ratio at recall 0.90/0.95/0.99; printed last).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from annlib import _core, defaults
from annlib.datasets import read_hdf5
from annlib.quantized.soar_choice import (code_bytes_per_point, exact_neighbours, last_level_cache_bytes, leaf_ranks,
                                         soar_verdict)
from annlib.quantized.training import assign, kmeans


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", help="an ann-benchmarks .hdf5 file")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--queries", type=int, default=300, help="sample rows used as queries")
    parser.add_argument("--soar-lambda", type=float, default=defaults.SOAR_LAMBDA)
    parser.add_argument("--spill-sample", type=int, default=20_000, help="rows whose SOAR leaf sizes the leaves")
    parser.add_argument("--targets", default="0.9,0.95,0.99")
    args = parser.parse_args(argv)

    data = read_hdf5(args.dataset)
    x = np.ascontiguousarray(data.train, dtype=np.float32)
    measure = data.distance_measure
    if measure == "cosine":
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
        measure = "dot_product"
    spherical, augment = defaults.partitioning_for(measure, defaults.norm_cv(x))
    if augment:
        print("norms vary: annlib would draw augmented leaves, which this test does not model", file=sys.stderr)
        return 2
    n, d = x.shape
    num_leaves = defaults.num_leaves_for(n)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    centers = kmeans(x, num_leaves, spherical=spherical, seed=0)
    labels = assign(x, centers, spherical=spherical)[0]
    print(f"{os.path.basename(args.dataset)}: n {n:,}, d {d}, {measure}, {num_leaves} leaves "
          f"({'spherical' if spherical else 'k-means'}), trained in {time.perf_counter() - t0:.1f} s; "
          f"k {args.k}, SOAR lambda {args.soar_lambda:g}")

    rows = np.sort(rng.choice(n, min(n, args.queries), replace=False))
    by_dot = measure == "dot_product"
    neighbours = exact_neighbours(x, rows, args.k, by_dot, 0)
    order, ranks = leaf_ranks(np.ascontiguousarray(x[rows]), centers, by_dot)
    primary = labels[neighbours]
    flat = neighbours.ravel()
    second = _core.soar_assign(np.ascontiguousarray(x[flat]), centers, np.ascontiguousarray(labels[flat]),
                               args.soar_lambda, 0).astype(np.int64).reshape(neighbours.shape)
    sample = rng.choice(n, min(n, args.spill_sample), replace=False)
    sample_second = _core.soar_assign(np.ascontiguousarray(x[sample]), centers,
                                      np.ascontiguousarray(labels[sample]), args.soar_lambda, 0).astype(np.int64)
    spilled = sample_second != labels[sample]
    plain_sizes = np.bincount(labels, minlength=num_leaves).astype(np.float64)
    soar_sizes = plain_sizes + np.bincount(sample_second[spilled], minlength=num_leaves) * (n / len(sample))

    q = np.arange(len(rows))[:, None]
    plain_rank = ranks[q, primary]
    soar_rank = np.minimum(plain_rank, np.where(second != primary, ranks[q, second], num_leaves))
    plain_cost = np.cumsum(plain_sizes[order], axis=1).mean(axis=0)
    soar_cost = np.cumsum(soar_sizes[order], axis=1).mean(axis=0)
    visits = np.arange(1, num_leaves + 1)
    plain_recall = (plain_rank.ravel()[None, :] < visits[:, None]).mean(axis=1)
    soar_recall = (soar_rank.ravel()[None, :] < visits[:, None]).mean(axis=1)
    print(f"spilled: {spilled.mean():.1%} of points; index slots x{soar_sizes.sum() / n:.2f}")
    print("| leaf-level recall | plain: leaves, points | SOAR: leaves, points | SOAR / plain points |")
    print("|---|---|---|---|")
    for target in (float(t) for t in args.targets.split(",")):
        p = int(np.argmax(plain_recall >= target))
        s = int(np.argmax(soar_recall >= target))
        print(f"| {target:g} | {p + 1}, {plain_cost[p]:,.0f} | {s + 1}, {soar_cost[s]:,.0f} | "
              f"{soar_cost[s] / plain_cost[p]:.2f} |")
    code_bytes = code_bytes_per_point(d, 2)
    verdict = soar_verdict(x, centers, plain_sizes, args.k, by_dot, args.soar_lambda, num_threads=0, code_bytes=code_bytes)
    print(f"soar_lambda='auto' here (2 dims/block: {code_bytes} code bytes a point, spilled codes "
          f"{soar_sizes.sum() * code_bytes / 2**20:,.0f} MiB, last-level cache {last_level_cache_bytes() / 2**20:,.0f} "
          f"MiB): ratio {verdict.ratio:.2f} -> {'SOAR' if verdict.pays else 'no SOAR'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
