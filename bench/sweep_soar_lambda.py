"""How annlib's SOAR spilling strength (soar_lambda) trades speed for recall.

    python bench/sweep_soar_lambda.py ../shared/datasets/words-100k-384-angular.hdf5 \\
        --lambdas 0.5,1,1.5,2,3 --dims-per-block 4 --threshold 0.1
    python bench/plot.py bench-results/soar-lambda-*.jsonl --out bench-results

One annlib build per lambda (and one without SOAR), all with the standard leaf
count and the same AH settings, swept over a finer leaves_to_search grid than
bench/run.py's; results go to bench-results/soar-lambda-<dataset>.jsonl as
series "annlib+soar(lambda=...)" and "annlib", so bench/plot.py tables them.
"""
import argparse
import sys
from pathlib import Path

from annlib.benchmarks.grids import Definition, num_leaves_for
from annlib.benchmarks.runner import run


def lambda_builds(lambdas, dims_per_block, threshold):
    def builds(n, d, measure, k):
        leaves = num_leaves_for(n)
        fractions = [0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.07, 0.1, 0.15, 0.25]
        sweep = [{"leaves": max(1, round(f * leaves)), "reorder": r} for f in fractions for r in (2 * k, 4 * k, 10 * k, 25 * k)]
        t = None if measure == "squared_l2" else threshold
        out = [Definition("annlib", "annlib", {"num_leaves": leaves, "dims_per_block": dims_per_block,
                                               "threshold": t, "soar_lambda": None}, sweep)]
        for lam in lambdas:
            out.append(Definition(f"annlib+soar(lambda={lam:g})", "annlib",
                                  {"num_leaves": leaves, "dims_per_block": dims_per_block, "threshold": t,
                                   "soar_lambda": lam}, sweep))
        return out
    return builds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--lambdas", default="0.5,1,1.5,2,3")
    parser.add_argument("--dims-per-block", type=int, default=2)
    parser.add_argument("--threshold", type=float, default=None, help="anisotropic threshold (inner product only)")
    parser.add_argument("--single-queries", type=int, default=1000)
    parser.add_argument("--output")
    args = parser.parse_args(argv)
    lambdas = [float(x) for x in args.lambdas.split(",")]
    output = args.output or str(Path("bench-results") / f"soar-lambda-{Path(args.dataset).stem}.jsonl")
    run(args.dataset, single_queries=args.single_queries, output=output,
        builds=lambda_builds(lambdas, args.dims_per_block, args.threshold))
    return 0


if __name__ == "__main__":
    sys.exit(main())
