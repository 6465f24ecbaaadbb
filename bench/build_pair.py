"""Build time of annlib against ScaNN, paired: the benchmark's own wrappers (the builds
bench/run.py times), built in alternating rounds in one process, so the host's drift
reaches both alike.

    python bench/build_pair.py ../shared/datasets/words-100k-384-angular.hdf5 [ROUNDS]

Builds annlib with and without SOAR and ScaNN without it, and ScaNN+SOAR (spherical leaves,
as the bench's best ScaNN+SOAR build on inner-product data) where ScaNN allows SOAR: the
bench's leaf count for the data, AH with 2 dims per block and the bench's anisotropic
threshold, on 2 threads. Prints every build and the median per system.
"""
from __future__ import annotations

import argparse
import gc
import time

import numpy as np

from annlib.benchmarks.algorithms import Annlib, Scann
from annlib.benchmarks.grids import SCANN_SOAR_LAMBDA, SOAR_LAMBDA, ah_builds, num_leaves_for
from annlib.benchmarks.runner import load_dataset


def builds(n: int, d: int, measure: str) -> list:
    leaves = num_leaves_for(n)
    (_, threshold), = ah_builds(d, measure, quick=True)  # the grid's threshold for the data, 2 dims
    annlib = {"num_leaves": leaves, "dims_per_block": 2, "threshold": threshold}
    scann = {"num_leaves": leaves, "threshold": threshold}
    out = [("annlib+soar", Annlib, {**annlib, "soar_lambda": SOAR_LAMBDA}), ("annlib", Annlib, annlib)]
    if measure == "dot_product":
        out.append(("scann+soar", Scann, {**scann, "soar_lambda": SCANN_SOAR_LAMBDA, "spherical": True}))
    out.append(("scann", Scann, scann))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", help="ann-benchmarks HDF5 file")
    parser.add_argument("rounds", type=int, nargs="?", default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    _, _, measure, train, _, _, _ = load_dataset(args.dataset, 0, 10)  # as bench/run.py loads it
    plan = builds(*train.shape, measure)
    print(f"{args.dataset}: {measure}, n={len(train):,}, {num_leaves_for(len(train))} leaves", flush=True)
    times: dict[str, list] = {name: [] for name, _, _ in plan}
    for r in range(args.rounds):
        for name, family, build_args in plan:
            algorithm = family(measure, args.threads, **build_args)
            start = time.perf_counter()
            algorithm.fit(train)
            times[name].append(time.perf_counter() - start)
            print(f"round {r}: {name} {times[name][-1]:.1f} s", flush=True)
            del algorithm
            gc.collect()
    for name, seconds in times.items():
        print(f"{name:<12} median {np.median(seconds):6.1f} s   ({' '.join(f'{s:.1f}' for s in seconds)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
