"""Maximum inner product on vectors whose norms vary: how annlib draws its leaves,
against ScaNN and FAISS IVF-PQ fast-scan at the same leaf count.

    python bench/bench_mips.py make --shared ../shared/datasets --out bench-results/data
    python bench/bench_mips.py run bench-results/data/words-lognormal-100k-384-dot.hdf5
    python bench/plot.py bench-results/mips-*.jsonl

`make` writes two "dot" datasets (ann-benchmarks layout, exact ground truth by annlib's
brute force, distance = -<q, x>): the MiniLM dev set's unit vectors scaled by norms drawn
from lognormal(0, 0.5) (a spread like that of recommendation embeddings, whose norms
follow popularity), and the README's Gaussian example (100k x 128, seed 0). `run`
measures, at the standard leaf count and one sweep for every system: annlib with plain
k-means leaves (what it built before it chose the leaves from the data), annlib with its
defaults' choice (annlib.defaults.partitioning_for), each with and without SOAR, ScaNN
with and without SOAR, and FAISS IVF-PQ fast-scan + refine. Results go to
bench-results/mips-<dataset>.jsonl; a table of the best QPS at each recall is printed.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

from annlib import defaults
from annlib.benchmarks.grids import Definition, num_leaves_for
from annlib.benchmarks.plot import best_qps, read_records, select_points
from annlib.benchmarks.runner import run

LOGNORMAL_SIGMA = 0.5
TARGETS = (0.8, 0.9, 0.95)


def make(shared: Path, out: Path) -> None:
    from annlib.datasets import ground_truth, read_hdf5, write_hdf5

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    gauss = rng.standard_normal((100_000, 128)).astype(np.float32)
    gauss_q = rng.standard_normal((1000, 128)).astype(np.float32)
    words = read_hdf5(shared / "words-100k-384-angular.hdf5")
    unit = words.train / np.linalg.norm(words.train, axis=1, keepdims=True)
    scaled = (unit * rng.lognormal(0.0, LOGNORMAL_SIGMA, size=(len(unit), 1))).astype(np.float32)
    queries = (words.test / np.linalg.norm(words.test, axis=1, keepdims=True)).astype(np.float32)
    for name, train, test in (("gaussian-100k-128-dot", gauss, gauss_q),
                              ("words-lognormal-100k-384-dot", scaled, queries)):
        ids, dist = ground_truth(train, test, 100, "dot_product")
        write_hdf5(out / f"{name}.hdf5", train, test, ids, dist, "dot")
        print(f"{out / name}.hdf5: norm cv {defaults.norm_cv(train):.3f}", file=sys.stderr)


def builds(norms: tuple):
    mean_norm, cv = norms
    spherical, augment = defaults.partitioning_for("dot_product", cv)

    def definitions(n, d, measure, k):
        leaves = num_leaves_for(n)
        fractions = [0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.25]
        sweep = [{"leaves": max(1, round(f * leaves)), "reorder": r} for f in fractions
                 for r in (2 * k, 4 * k, 10 * k, 25 * k, 100 * k)]
        ah = {"dims_per_block": defaults.dims_per_block_for(d),
              "threshold": defaults.threshold_for(d, measure, norm_scale=mean_norm)}
        chosen = "augmented" if augment else "spherical" if spherical else "k-means"
        out = []
        for soar in (None, defaults.SOAR_LAMBDA):
            suffix = "+soar" if soar else ""
            out.append(Definition(f"annlib{suffix} (k-means leaves)", "annlib",
                                  {"num_leaves": leaves, **ah, "soar_lambda": soar, "spherical": False,
                                   "augment_norms": False}, sweep))
            out.append(Definition(f"annlib{suffix} ({chosen} leaves)", "annlib",
                                  {"num_leaves": leaves, **ah, "soar_lambda": soar, "spherical": spherical,
                                   "augment_norms": augment}, sweep))
        for soar in (None, 1.0):
            out.append(Definition("scann+soar" if soar else "scann", "scann",
                                  {"num_leaves": leaves, "threshold": ah["threshold"], "soar_lambda": soar}, sweep))
        out.append(Definition("faiss-ivfpqfs", "faiss-ivfpqfs", {"nlist": leaves},
                              [{"nprobe": q["leaves"], "reorder": q["reorder"]} for q in sweep]))
        return out

    return definitions


def table(output: str) -> str:
    lines = []
    for dataset, by_algorithm in select_points(read_records([output])).items():
        lines += [f"{dataset}: best QPS at recall@10 >= target (single: one query per call, 1 thread; "
                  "batched: all threads)", "", "| series | " + " | ".join(
                      f"{mode} {t:.2f}" for mode in ("single", "batched") for t in TARGETS) + " |",
                  "|---|" + "---|" * (2 * len(TARGETS))]
        for algorithm, points in by_algorithm.items():
            cells = []
            for key in ("qps_single", "qps_batched"):
                for t in TARGETS:
                    p = best_qps(points, key, t)
                    cells.append("-" if p is None else f"{p[key]:,.0f}")
            lines.append(f"| {algorithm} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make")
    m.add_argument("--shared", type=Path, default=Path("../shared/datasets"))
    m.add_argument("--out", type=Path, default=Path("bench-results/data"))
    r = sub.add_parser("run")
    r.add_argument("dataset")
    r.add_argument("--single-queries", type=int, default=500)
    r.add_argument("--output")
    args = parser.parse_args(argv)
    if args.command == "make":
        make(args.shared, args.out)
        return 0
    from annlib.datasets import read_hdf5

    norms = defaults.norm_stats(read_hdf5(args.dataset).train)
    output = args.output or str(Path("bench-results") / f"mips-{Path(args.dataset).stem}.jsonl")
    run(args.dataset, single_queries=args.single_queries, output=output, builds=builds(norms))
    print(table(output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
