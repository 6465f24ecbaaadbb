"""`annlib tune`: tune a saved index from the command line.

    annlib tune --index DIR [--queries Q.npy | --queries DATA.hdf5] [--ground-truth GT.npy]
                (--target-recall 0.95 | --max-latency-us 200) [-k 10] [--write]

An HDF5 file (ann-benchmarks layout) gives its test queries and, unless
--ground-truth is given, its stored neighbours. Without --queries the tuner
samples the database (needs the index's float32 reorder copy). --write makes
the chosen settings the index's defaults: the index is saved again, atomically,
with them in its config.json (annlib.load applies them; format version 1 kept
them in a search_params.json beside the index instead).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..indexes import load_single
from .tune import tune


def add_arguments(parser) -> None:
    parser.add_argument("--index", required=True, help="a saved quantized index directory")
    parser.add_argument("--queries", help="queries: .npy [nq, d] or an ann-benchmarks .hdf5 (default: a "
                                          "database sample)")
    parser.add_argument("--ground-truth", help=".npy [nq, >= k] true neighbour ids (default: stored in the "
                                               "HDF5, else exact brute force)")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-recall", type=float, help="cheapest setting reaching this recall@k")
    target.add_argument("--max-latency-us", type=float, help="best recall within this single-query latency")
    parser.add_argument("-k", type=int, help="neighbours per query (default: the index's num_neighbors)")
    parser.add_argument("--recall-tolerance", type=float, default=0.0,
                        help="count a returned point within this of the k-th true score as found (ann-benchmarks "
                             "counts 1e-3); needs exact scores, so the ground truth is computed, not read")
    parser.add_argument("--threads", type=int, default=0, help="threads for ground truth and ranks (0 = all)")
    parser.add_argument("--write", action="store_true", help="store the settings in the index directory")


def _load_queries(path, ground_truth):
    if path is None:
        return None, None
    suffix = Path(path).suffix.lower()
    if suffix in (".hdf5", ".h5"):
        from ..datasets import read_hdf5

        ds = read_hdf5(path, load_train=False)
        truth = ds.neighbors if ground_truth is None else None
        return ds.test, truth
    if suffix == ".npy":
        return np.load(path, allow_pickle=False), None
    raise ValueError(f"{path}: queries must be a .npy or .hdf5 file")


def print_result(result, out=print) -> None:
    out(f"{'leaves':>7} {'reorder':>8} {'pred. recall':>13} {'pred. us':>9}  ")
    chosen = (result.params.leaves_to_search, result.params.pre_reorder_num_neighbors)
    rows = {(p.leaves_to_search, p.pre_reorder_num_neighbors): p for p in result.frontier}
    if chosen not in rows:
        rows[chosen] = None
    for key in sorted(rows, key=lambda key: (rows[key].predicted_cost_us if rows[key] else result.predicted_cost_us)):
        p = rows[key]
        recall = p.predicted_recall if p else result.predicted_recall
        cost = p.predicted_cost_us if p else result.predicted_cost_us
        mark = "  <- chosen" if key == chosen else ""
        out(f"{key[0]:>7} {key[1]:>8} {recall:>13.4f} {cost:>9.1f}{mark}")
    out(result.summary())
    model = ", ".join(f"{key} {value:.4g}" for key, value in result.cost_model.items())
    out(f"cost model (us): {model}")


def run_tune(args) -> int:
    # Bad arguments raise; annlib.cli.main prints them as one line naming the command.
    searcher = load_single(args.index)
    queries, truth = _load_queries(args.queries, args.ground_truth)
    if args.ground_truth:
        truth = np.load(args.ground_truth, allow_pickle=False)
    if args.recall_tolerance:
        truth = None  # a file's neighbours carry no scores; the tuner computes them (an explicit file errors)
        if args.ground_truth:
            raise ValueError("--recall-tolerance compares exact scores: leave out --ground-truth")
    result = tune(searcher, queries, target_recall=args.target_recall, max_latency_us=args.max_latency_us,
                  k=args.k, ground_truth=truth, num_threads=args.threads, recall_tolerance=args.recall_tolerance)
    print_result(result)
    if args.write:
        searcher.set_default_params(result.params)
        searcher.save(args.index)
        print(f"wrote the tuned defaults into {Path(args.index) / 'config.json'}")
    return 0
