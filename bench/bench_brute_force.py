"""Brute-force throughput, side by side in one process: annlib (exact, binned,
bfloat16, int8) vs FAISS IndexFlat and NumPy (matmul + argpartition).

    python bench/bench_brute_force.py ../shared/datasets/words-100k-384-angular.hdf5 \
        ../shared/datasets/sift-150k-128-euclidean.hdf5 [--queries 2000] [--threads 2]

Prints, per dataset: recall@k against the file's ground truth, QPS (best of
--repeats batched runs), ratios against FAISS and NumPy, annlib's single-query
latency (median search() of --single queries on one thread) with its ratio to
exact search, and GFLOP/s of annlib's exact kernel next to NumPy's float32
matmul on the same shapes.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def best_time(fn, repeats):
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def recall(ids, truth, k):
    return float(np.mean([len(np.intersect1d(a[:k], b[:k])) / k for a, b in zip(ids, truth)]))


def numpy_topk(x, q, k, measure, block=500):
    out = np.empty((len(q), k), dtype=np.int64)
    bias = -0.5 * np.einsum("ij,ij->i", x, x) if measure == "squared_l2" else None
    for s in range(0, len(q), block):
        scores = q[s:s + block] @ x.T
        if bias is not None:
            scores += bias
        part = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1)
        out[s:s + block] = np.take_along_axis(part, order, 1)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--single", type=int, default=200, help="queries timed one at a time (0: none)")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    import annlib
    from annlib.datasets import read_hdf5
    from annlib.demo import single_query_us

    try:
        import faiss
        faiss.omp_set_num_threads(args.threads)
    except ImportError:
        faiss = None
        print("faiss not installed: skipping the FAISS column (pip install faiss-cpu)")
    k = args.k
    print(f"annlib {annlib.__version__}, SIMD level {annlib.simd_level()}, threads={args.threads}, k={k}")
    for path in args.datasets:
        ds = read_hdf5(path)
        measure = ds.distance_measure
        x, q, truth = ds.train, ds.test[:args.queries], ds.neighbors[:args.queries]
        n, d = x.shape
        print(f"\n== {ds.name}: n={n} d={d} queries={len(q)} measure={measure}")
        xn, qn = x, q
        if measure == "cosine":
            xn = x / np.linalg.norm(x, axis=1, keepdims=True)
            qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        rows, single = [], {}
        for label, kw in [("annlib exact float32", dict(recall_target=1.0, dtype="float32")),
                          ("annlib recall_target=0.9", dict(recall_target=0.9, dtype="float32")),
                          ("annlib exact bfloat16", dict(recall_target=1.0, dtype="bfloat16")),
                          ("annlib exact int8", dict(recall_target=1.0, dtype="int8"))]:
            s = annlib.builder(x, k, measure).score_brute_force(**kw).build()
            t, (ids, _) = best_time(lambda: s.search_batched(q, k, num_threads=args.threads), args.repeats)
            rows.append((label, recall(ids, truth, k), len(q) / t, t))
            if args.single:
                single[label] = single_query_us(s, q[:args.single], k)
            del s
        if faiss is not None:
            index = faiss.IndexFlatL2(d) if measure == "squared_l2" else faiss.IndexFlatIP(d)
            index.add(np.ascontiguousarray(xn, dtype=np.float32))
            t, (_, ids) = best_time(lambda: index.search(np.ascontiguousarray(qn, dtype=np.float32), k), args.repeats)
            rows.append(("faiss IndexFlat", recall(ids, truth, k), len(q) / t, t))
        t, ids = best_time(lambda: numpy_topk(xn, qn, k, measure), args.repeats)
        rows.append(("numpy matmul+argpartition", recall(ids, truth, k), len(q) / t, t))
        ref = {r[0]: r[2] for r in rows}
        print(f"{'method':<28}{f'recall@{k}':>10}{'QPS':>10}{'vs faiss':>10}{'vs numpy':>10}{'vs exact':>10}"
              + (f"{'1-query us':>12}{'vs exact':>10}" if single else ""))
        for label, rec, qps, _ in rows:
            vf = f"{qps / ref['faiss IndexFlat']:.2f}x" if "faiss IndexFlat" in ref else "-"
            one = ""
            if single:
                one = (f"{single[label]:>12.0f}{single['annlib exact float32'] / single[label]:>9.2f}x"
                       if label in single else f"{'-':>12}{'-':>10}")
            print(f"{label:<28}{rec:>10.4f}{qps:>10.0f}{vf:>10}{qps / ref['numpy matmul+argpartition']:>9.2f}x"
                  f"{qps / ref['annlib exact float32']:>9.2f}x{one}")
        flops = 2.0 * len(q) * n * d
        t_mm, _ = best_time(lambda: qn @ xn.T, args.repeats)
        t_ex = rows[0][3]
        print(f"GFLOP/s: annlib exact kernel {flops / t_ex / 1e9:.1f}, numpy float32 matmul "
              f"{flops / t_mm / 1e9:.1f} -> {t_mm / t_ex:.0%} of numpy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
