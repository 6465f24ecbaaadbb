"""annlib's quantized index vs ScaNN, FAISS (IVF-PQ fast scan + refine) and
hnswlib, side by side in one process per dataset, same data, same queries.

    python bench/bench_quantized.py ../shared/datasets/words-100k-384-angular.hdf5 \
        [--queries 2000] [--threads 2] [--systems annlib,scann,faiss,hnswlib] [--quick]

For every system it builds a small grid of indexes, sweeps the search knobs,
and measures recall@k on all queries, single-thread QPS (one query per call,
as a latency-bound user calls it) and batched QPS (--threads threads). It then
prints, for each recall target, the best QPS each system reaches at or above
it and the first system's ratio to each other one, plus build time and index
memory of the configurations used, and the first system's per-stage time
breakdown at one point. With annlib+soar and annlib both listed (or
scann+soar and scann) it also prints recall per leaves_to_search with and
without SOAR and what spilling costs in memory and build time.
Figures are only comparable within one run (shared machines are noisy).
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from annlib.defaults import SOAR_LAMBDA  # annlib's recommendation, measured on the dev sets (README)

TARGETS = (0.90, 0.95, 0.99)


@dataclass
class Point:
    system: str
    build: str      # build configuration
    knobs: str      # search knobs
    recall: float
    qps_single: float
    qps_batched: float


@dataclass
class Built:
    system: str
    name: str
    build_s: float
    memory_bytes: int
    points: list = field(default_factory=list)


def recall_at(ids, truth, k):
    hits = sum(len(np.intersect1d(a[:k], b[:k])) for a, b in zip(ids, truth))
    return hits / (k * len(truth))


def dir_size(path):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def measure_point(system, build_name, knobs, one, batched, queries, truth, k, single_queries):
    """one(q) -> ids of one query; batched(Q) -> ids [n, k]."""
    start = time.perf_counter()
    ids = batched(queries)
    qps_batched = len(queries) / (time.perf_counter() - start)
    rec = recall_at(np.asarray(ids), truth, k)
    sub = queries[:single_queries]
    for q in sub[:20]:  # warm up
        one(q)
    start = time.perf_counter()
    for q in sub:
        one(q)
    qps_single = len(sub) / (time.perf_counter() - start)
    return Point(system, build_name, knobs, rec, qps_single, qps_batched)


def saved_size(save):
    """Bytes a system writes when saving its index into a temporary directory."""
    tmp = tempfile.mkdtemp()
    try:
        save(tmp)
        return dir_size(tmp)
    finally:
        shutil.rmtree(tmp)


def sweep_leaves_and_reorder(built, num_leaves, search, search_batched, queries, truth, k, quick, single):
    """Adds a point per (leaves_to_search, reorder) of the grid; search(q, leaves, pre) -> ids of
    one query, search_batched(Q, leaves, pre) -> ids [n, k] (ScaNN-style partitioned searchers)."""
    leaves_list, reorders = search_grid(num_leaves, quick)
    for leaves in leaves_list:
        for pre in reorders:
            built.points.append(measure_point(
                built.system, built.name, f"leaves={leaves} reorder={pre}",
                lambda q: search(q, leaves, pre), lambda qs: search_batched(qs, leaves, pre),
                queries, truth, k, single))


# ----------------------------------------------------------------- systems

def leaf_counts(n, quick):
    base = int(round(math.sqrt(n) / 100.0)) * 100 or 100
    return [base * 2] if quick else [base, base * 2, base * 4]


def search_grid(num_leaves, quick):
    fractions = [0.01, 0.02, 0.04, 0.07, 0.1, 0.15, 0.25, 0.4] if not quick else [0.02, 0.05, 0.1, 0.2, 0.35]
    leaves = sorted({max(1, int(round(f * num_leaves))) for f in fractions})
    return leaves, ([20, 40, 100, 250] if not quick else [40, 100, 250])


def ah_settings(d, measure, norms):
    """(dims_per_block, threshold) pairs worth trying: 2 dims everywhere, 4 at
    high d; the anisotropic threshold only for inner-product data (ScaNN's use)."""
    dpbs = [2, 4] if d >= 256 else [2]
    thresholds = [None]
    if measure != "squared_l2":
        thresholds.append(0.2 if d <= 128 else 0.1)
    return [(dpb, t) for dpb in dpbs for t in thresholds]


def run_annlib(data, queries, truth, k, measure, threads, quick, single, soar_lambda=None):
    import annlib

    out = []
    norms = np.linalg.norm(data, axis=1)
    system = "annlib" if soar_lambda is None else "annlib+soar"
    for num_leaves in leaf_counts(len(data), quick):
        for dpb, t in ah_settings(data.shape[1], measure, norms):
            name = f"leaves={num_leaves} dpb={dpb} T={t}" + (f" soar={soar_lambda}" if soar_lambda is not None else "")
            start = time.perf_counter()
            s = (annlib.builder(data, k, measure).tree(num_leaves, max(1, num_leaves // 20), soar_lambda=soar_lambda)
                 .score_ah(dpb, anisotropic_quantization_threshold=t).reorder(100).build(num_threads=threads,
                                                                                       progress=False))
            built = Built(system, name, time.perf_counter() - start, sum(a.nbytes for a in s._arrays().values()))
            sweep_leaves_and_reorder(
                built, num_leaves,
                lambda q, leaves, pre: s.search(q, pre_reorder_num_neighbors=pre, leaves_to_search=leaves)[0],
                lambda qs, leaves, pre: s.search_batched(qs, pre_reorder_num_neighbors=pre, leaves_to_search=leaves,
                                                         num_threads=threads)[0],
                queries, truth, k, quick, single)
            built.searcher = s
            out.append(built)
            print(f"  {system} {name}: build {built.build_s:.1f} s", file=sys.stderr)
    return out


def run_annlib_soar(data, queries, truth, k, measure, threads, quick, single):
    return run_annlib(data, queries, truth, k, measure, threads, quick, single, soar_lambda=SOAR_LAMBDA)


def run_scann(data, queries, truth, k, measure, threads, quick, single, soar_lambda=None):
    import scann

    out = []
    scann_measure = "squared_l2" if measure == "squared_l2" else "dot_product"
    if soar_lambda is not None and scann_measure != "dot_product":
        print("  scann+soar skipped: ScaNN allows SOAR with dot product only", file=sys.stderr)
        return out
    system = "scann" if soar_lambda is None else "scann+soar"
    for num_leaves in leaf_counts(len(data), quick):
        # ScaNN's LUT16 takes 2 dims per block; thresholds as for annlib (0.1 at d >= 256).
        for t in sorted({t for _, t in ah_settings(data.shape[1], measure, None)}, key=str):
            name = f"leaves={num_leaves} dpb=2 T={t}" + (f" soar={soar_lambda}" if soar_lambda is not None else "")
            start = time.perf_counter()
            b = scann.scann_ops_pybind.builder(data, k, scann_measure).tree(
                num_leaves=num_leaves, num_leaves_to_search=max(1, num_leaves // 20),
                training_sample_size=min(len(data), 100_000), soar_lambda=soar_lambda)
            b = b.score_ah(2, anisotropic_quantization_threshold=t) if t else b.score_ah(2)
            s = b.reorder(100).build()
            build_s = time.perf_counter() - start
            built = Built(system, name, build_s, saved_size(s.serialize))
            sweep_leaves_and_reorder(
                built, num_leaves,
                lambda q, leaves, pre: s.search(q, final_num_neighbors=k, pre_reorder_num_neighbors=pre,
                                                leaves_to_search=leaves)[0],
                lambda qs, leaves, pre: s.search_batched_parallel(qs, final_num_neighbors=k,
                                                                  pre_reorder_num_neighbors=pre,
                                                                  leaves_to_search=leaves)[0],
                queries, truth, k, quick, single)
            out.append(built)
            print(f"  {system} {name}: build {build_s:.1f} s", file=sys.stderr)
    return out


def run_scann_soar(data, queries, truth, k, measure, threads, quick, single):
    # ScaNN's SOAR setting as the issue names it: lambda 1.0, threshold 0.1 (ah_settings).
    return run_scann(data, queries, truth, k, measure, threads, quick, single, soar_lambda=1.0)


def run_faiss(data, queries, truth, k, measure, threads, quick, single):
    import faiss

    out = []
    d = data.shape[1]
    metric = faiss.METRIC_L2 if measure == "squared_l2" else faiss.METRIC_INNER_PRODUCT
    for nlist in leaf_counts(len(data), quick):
        name = f"IVF{nlist},PQ{d // 2}x4fs,RFlat"
        faiss.omp_set_num_threads(threads)
        start = time.perf_counter()
        index = faiss.index_factory(d, name, metric)
        index.train(data)
        index.add(data)
        build_s = time.perf_counter() - start
        built = Built("faiss", name, build_s, len(faiss.serialize_index(index)))
        ivf = faiss.extract_index_ivf(index)
        leaves_list, reorders = search_grid(nlist, quick)
        for nprobe in leaves_list:
            for pre in reorders:
                ivf.nprobe = nprobe
                index.k_factor = max(1.0, pre / k)

                def one(q):
                    return index.search(q[None, :], k)[1][0]

                def batched(qs):
                    faiss.omp_set_num_threads(threads)
                    ids = index.search(qs, k)[1]
                    faiss.omp_set_num_threads(1)
                    return ids

                faiss.omp_set_num_threads(1)
                built.points.append(measure_point("faiss", name, f"nprobe={nprobe} k_factor={pre / k:g}", one,
                                                  batched, queries, truth, k, single))
        out.append(built)
        print(f"  faiss {name}: build {build_s:.1f} s", file=sys.stderr)
    return out


def run_hnswlib(data, queries, truth, k, measure, threads, quick, single):
    import hnswlib

    out = []
    space = "l2" if measure == "squared_l2" else "ip"
    for m in ([16] if quick else [16, 32]):
        name = f"M={m} efC=200"
        start = time.perf_counter()
        index = hnswlib.Index(space=space, dim=data.shape[1])
        index.init_index(max_elements=len(data), ef_construction=200, M=m)
        index.add_items(data, num_threads=threads)
        build_s = time.perf_counter() - start
        built = Built("hnswlib", name, build_s, saved_size(lambda tmp: index.save_index(os.path.join(tmp, "i.bin"))))
        for ef in ([20, 40, 80, 160] if quick else [10, 20, 40, 60, 80, 120, 160, 240, 400]):
            index.set_ef(max(ef, k))

            def one(q):
                return index.knn_query(q, k, num_threads=1)[0][0]

            def batched(qs):
                return index.knn_query(qs, k, num_threads=threads)[0]

            built.points.append(measure_point("hnswlib", name, f"ef={ef}", one, batched, queries, truth, k, single))
        out.append(built)
        print(f"  hnswlib {name}: build {build_s:.1f} s", file=sys.stderr)
    return out


RUNNERS = {"annlib": run_annlib, "annlib+soar": run_annlib_soar, "scann": run_scann, "scann+soar": run_scann_soar,
           "faiss": run_faiss, "hnswlib": run_hnswlib}


# ----------------------------------------------------------------- report

def best_at(builts, target, attr):
    """Best (qps, point, built) over every point of every build with recall >= target."""
    best = (0.0, None, None)
    for built in builts:
        for p in built.points:
            if p.recall >= target and getattr(p, attr) > best[0]:
                best = (getattr(p, attr), p, built)
    return best


def report(name, results, systems):
    """Best QPS per recall target; ratios of the first system to each other one."""
    lead, peers = systems[0], systems[1:]
    print(f"\n## {name}")
    for attr, label in (("qps_single", "single-thread QPS (one query per call)"),
                        ("qps_batched", "batched QPS")):
        print(f"\n{label}")
        width = max(11, *(len(s) + 2 for s in systems))
        header = f"{'recall':>7} " + " ".join(f"{s:>{width}}" for s in systems)
        header += " " + " ".join(f"{'x ' + s:>{width + 2}}" for s in peers)
        print(header)
        for target in TARGETS:
            row = {s: best_at(results[s], target, attr)[0] for s in systems}
            line = f"{target:>7.2f} " + " ".join(f"{row[s]:>{width}.0f}" if row[s] else f"{'-':>{width}}"
                                                 for s in systems)
            line += " " + " ".join(f"{row[lead] / row[s]:>{width + 2}.2f}" if row[s] and row[lead]
                                   else f"{'-':>{width + 2}}" for s in peers)
            print(line)
    print("\nconfigurations behind the single-thread bests (build time, index memory):")
    for target in TARGETS:
        for s in systems:
            qps, p, built = best_at(results[s], target, "qps_single")
            if p is not None:
                print(f"  @{target:.2f} {s:11} {built.name} | {p.knobs} | recall {p.recall:.4f} | "
                      f"build {built.build_s:.1f} s | {built.memory_bytes / 2**20:.1f} MiB")
    for with_soar, without in (("annlib+soar", "annlib"), ("scann+soar", "scann")):
        if with_soar in results and without in results:
            soar_report(results[with_soar], results[without])


def soar_report(with_soar, without):
    """Recall@k per leaves_to_search (best reorder) and the cost of spilling,
    build by build, for builds that differ only in SOAR."""
    plain = {b.name: b for b in without}
    for b in with_soar:
        base = plain.get(b.name.rsplit(" soar=", 1)[0])
        if base is None:
            continue
        print(f"\n{b.system} vs {base.system}, {base.name}: memory {b.memory_bytes / base.memory_bytes - 1:+.1%}, "
              f"build time {b.build_s / base.build_s - 1:+.1%}")
        print(f"  {'leaves':>7} {'recall':>8} {'+soar':>8}")
        for leaves in sorted({int(p.knobs.split()[0].split("=")[1]) for p in b.points}):
            def best(built):
                return max(p.recall for p in built.points if p.knobs.split()[0] == f"leaves={leaves}")
            print(f"  {leaves:>7} {best(base):>8.4f} {best(b):>8.4f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--single-queries", type=int, default=1000,
                        help="queries timed one per call for single-thread QPS (default 1000)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--systems", default="annlib,scann,faiss,hnswlib",
                        help="comma-separated, the first is compared with the others: annlib, annlib+soar, "
                             "scann, scann+soar (dot product only), faiss, hnswlib")
    parser.add_argument("--quick", action="store_true", help="smaller build and search grids")
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    from annlib.datasets import read_hdf5

    systems = args.systems.split(",")
    for path in args.datasets:
        ds = read_hdf5(path)
        data = np.ascontiguousarray(ds.train, dtype=np.float32)
        queries = np.ascontiguousarray(ds.test[:args.queries], dtype=np.float32)
        truth = ds.neighbors[:args.queries, :args.k]
        measure = ds.distance_measure
        if measure == "cosine":  # every system then runs inner product on unit vectors
            data /= np.linalg.norm(data, axis=1, keepdims=True)
            queries /= np.linalg.norm(queries, axis=1, keepdims=True)
            measure = "dot_product"
        print(f"{os.path.basename(path)}: n={len(data)} d={data.shape[1]} {measure}, {len(queries)} queries, "
              f"k={args.k}, {args.threads} threads", file=sys.stderr)
        results = {s: RUNNERS[s](data, queries, truth, args.k, measure, args.threads, args.quick,
                                 args.single_queries) for s in systems}
        report(os.path.basename(path), results, systems)
        lead = systems[0]
        if lead.startswith("annlib"):
            _, p, built = best_at(results[lead], 0.95, "qps_single") if best_at(
                results[lead], 0.95, "qps_single")[1] else best_at(results[lead], 0.0, "qps_single")
            knobs = dict(kv.split("=") for kv in p.knobs.split())
            times = built.searcher.stage_times(queries[:args.single_queries],
                                               leaves_to_search=int(knobs["leaves"]),
                                               pre_reorder_num_neighbors=int(knobs["reorder"]))
            n = min(len(queries), args.single_queries)
            parts = ", ".join(f"{key} {v / n * 1e6:.1f} us" for key, v in times.items())
            print(f"\n{lead} per-query stage times at {built.name} | {p.knobs} (recall {p.recall:.4f}): {parts}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
