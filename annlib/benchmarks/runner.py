"""Runs the benchmark: every build in its own process, every query setting swept.

    python bench/run.py ../shared/datasets/words-100k-384-angular.hdf5
    annlib bench sift-128-euclidean --algorithms annlib+soar,faiss-ivfpqfs,hnswlib

For each build (grids.definitions) a fresh process (multiprocessing "spawn")
loads the dataset, builds the index (timed; resident-memory delta and the
library's own serialised size recorded), then for each query setting runs the
whole query set as one batch on `threads` threads and the first
`single_queries` one per call on one thread, keeping the best of `runs` timed
repetitions of each (more, up to 50, until half a second was timed). Recall@k is computed from the batch's ids the way
ann-benchmarks does (recall.py). After the grid, `refine_rounds` rounds of
refine.proposals measure settings between each recall target's fastest point and
the grid step below it, for every build alike. Each measured point is appended to the JSON
lines file as soon as it exists, so an interrupted run keeps what it measured
and a re-run appends. A fresh process per build means no library's thread
pool, allocator state or crash carries over to the next one.
"""
from __future__ import annotations

import datetime as _dt
import json
import multiprocessing
import os
import platform
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._core import available_cores
from .grids import ALL_LABELS, Definition, definitions


@dataclass(frozen=True)
class Settings:
    """Everything a build process needs besides its Definition."""
    dataset_path: str
    output: str
    run_id: str
    k: int
    threads: int
    num_queries: int
    single_queries: int
    runs: int
    started: float          # time.time() of the run's start, for elapsed-time progress lines
    refine_rounds: int = 0  # bisection rounds near the recall targets after the grid (refine.py)


def resolve_dataset(name_or_path: str) -> Path:
    """An ann-benchmarks HDF5 path, or a name annlib.datasets.fetch knows (downloaded once)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    from ..datasets import DATASETS, fetch

    if name_or_path in DATASETS:
        return fetch(name_or_path)
    raise FileNotFoundError(f"{name_or_path} is neither a file nor a dataset name "
                            f"(known names: {', '.join(sorted(DATASETS))})")


def load_dataset(path, num_queries: int, k: int):
    """(name, metric, measure, train, queries, true_distances, true_ids). Angular data is
    normalised once so every system runs inner product on unit vectors; "dot" data (inner
    product, distances = -<q, x>) runs inner product as it is."""
    from ..datasets import read_hdf5

    ds = read_hdf5(path)
    if ds.metric not in ("angular", "euclidean", "dot"):
        raise ValueError(f"{path}: metric {ds.metric!r}; the benchmark runs angular, euclidean or dot data")
    if ds.distances is None or ds.neighbors is None:
        raise ValueError(f"{path} has no ground truth ('neighbors' and 'distances')")
    if ds.neighbors.shape[1] < k:
        raise ValueError(f"{path}: ground truth has {ds.neighbors.shape[1]} neighbours per query, k={k}")
    train = np.ascontiguousarray(ds.train, dtype=np.float32)
    queries = np.ascontiguousarray(ds.test[:num_queries] if num_queries else ds.test, dtype=np.float32)
    measure = "dot_product" if ds.metric == "dot" else "squared_l2"
    if ds.metric == "angular":
        train /= np.maximum(np.linalg.norm(train, axis=1, keepdims=True), 1e-30)
        queries /= np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-30)
        measure = "dot_product"
    nq = len(queries)
    return ds.name, ds.metric, measure, train, queries, ds.distances[:nq], ds.neighbors[:nq]


def dataset_name(path) -> str:
    """The name of an HDF5 dataset, read without its train rows."""
    from ..datasets import read_hdf5

    return read_hdf5(path, load_train=False).name


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _library_version(family: str) -> str:
    from importlib import metadata

    from .algorithms import FAMILIES

    dist = {"faiss": "faiss-cpu"}.get(FAMILIES[family][1], FAMILIES[family][1])
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def _append(path: str, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


DEFAULT_REFINE_ROUNDS = 2  # halves a grid step twice: 30 -> 42 leaves is read to within 3
MIN_TIMED_SECONDS = 0.5   # short timings are repeated until this much was timed (best kept)


def _best_seconds(fn, runs: int) -> float:
    """Best of at least `runs` timings, more while under MIN_TIMED_SECONDS in all (at most 50):
    a 30 ms batch timed twice on a shared machine is mostly noise."""
    best, total, count = float("inf"), 0.0, 0
    while count < runs or (total < MIN_TIMED_SECONDS and count < 50):
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        best, total, count = min(best, elapsed), total + elapsed, count + 1
    return best


def _elapsed(settings: Settings) -> str:
    seconds = int(time.time() - settings.started)
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def measure_build(definition_json: str, settings: Settings, common: dict) -> None:
    """Body of one build process: build, sweep, refine, append one record per query setting."""
    from .algorithms import FAMILIES
    from .recall import id_recall, knn_recall, metric_distances
    from .refine import floors_for, proposals

    definition = Definition.from_json(definition_json)
    name, metric, measure, train, queries, true_distances, true_ids = load_dataset(
        settings.dataset_path, settings.num_queries, settings.k)
    k = settings.k
    wrapper = FAMILIES[definition.family][0](measure, settings.threads, **definition.build_args)
    print(f"[{_elapsed(settings)}] {definition.name}: building", file=sys.stderr, flush=True)
    rss_before = _rss_bytes()
    start = time.perf_counter()
    wrapper.fit(train)
    build_s = time.perf_counter() - start
    rss_after = _rss_bytes()
    index_bytes = wrapper.index_bytes()
    print(f"[{_elapsed(settings)}] {definition.name}: built in {build_s:.1f} s, "
          f"{index_bytes / 2**20:.1f} MiB", file=sys.stderr, flush=True)
    single = queries[:settings.single_queries]

    def measure_point(query_args: dict, position: str, refined: int) -> dict:
        wrapper.set_query_arguments(**query_args)
        ids = np.asarray(wrapper.batch_query(queries, k))          # warm-up, and the ids recall is read from
        batched_s = _best_seconds(lambda: wrapper.batch_query(queries, k), settings.runs)
        for q in single[:20]:
            wrapper.query(q, k)

        def one_by_one():
            for q in single:
                wrapper.query(q, k)

        single_s = _best_seconds(one_by_one, settings.runs)
        recall = knn_recall(true_distances, metric_distances(metric, queries, train, ids), k)
        record = dict(common, kind="point", dataset=name, metric=metric, n=len(train), d=train.shape[1],
                      algorithm=definition.label, family=definition.family,
                      library_version=_library_version(definition.family), build=definition.build_args,
                      query=query_args, name=definition.name, recall=recall,
                      recall_ids=id_recall(ids, true_ids, k),
                      qps_single=len(single) / single_s, qps_batched=len(queries) / batched_s,
                      build_s=build_s, index_bytes=index_bytes,
                      rss_delta_bytes=(rss_after - rss_before) if rss_before is not None else None,
                      refined=refined)
        _append(settings.output, record)
        knobs = " ".join(f"{key}={value}" for key, value in query_args.items()) or "-"
        print(f"[{_elapsed(settings)}] {definition.name} {position} {knobs}: "
              f"recall {recall:.4f}, single {record['qps_single']:,.0f} QPS, "
              f"batched {record['qps_batched']:,.0f} QPS", file=sys.stderr, flush=True)
        return record

    points = [measure_point(q, f"{i}/{len(definition.query_args)}", 0)
              for i, q in enumerate(definition.query_args, 1)]
    for round_ in range(1, settings.refine_rounds + 1):
        extra = proposals(points, floors=floors_for(k))
        if not extra:
            break
        points += [measure_point(q, f"refine {round_}.{i}/{len(extra)}", round_) for i, q in enumerate(extra, 1)]


def _run_isolated(definition: Definition, settings: Settings, common: dict, timeout: float) -> str | None:
    """Runs one build in a spawned process; returns None on success, else why it failed."""
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=measure_build, args=(definition.to_json(), settings, common), daemon=True)
    proc.start()
    try:
        proc.join(timeout)
    except KeyboardInterrupt:
        proc.terminate()
        proc.join()
        raise
    if proc.is_alive():
        proc.terminate()
        proc.join()
        return f"timed out after {timeout:.0f} s"
    if proc.exitcode != 0:
        return f"build process exited with code {proc.exitcode}"
    return None


def run(dataset: str, *, algorithms=ALL_LABELS, k: int = 10, threads: int = 0, num_queries: int = 0,
        single_queries: int = 1000, runs: int = 2, output: str | None = None, quick: bool = False,
        timeout: float = 1800.0, builds=None, reorder_dtypes=("float32",), refine_rounds: int | None = None) -> Path:
    """Benchmarks `algorithms` on one dataset; returns the JSON lines file the results went to.
    `builds(n, d, measure, k)` -> [Definition] replaces the standard grid (custom sweeps).
    `refine_rounds`: bisection rounds near the recall targets after each build's grid
    (refine.py); None: 2, or 0 with `quick`."""
    from .algorithms import missing_module

    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if runs < 1 or single_queries < 1:
        raise ValueError("runs and single_queries must be >= 1")
    if refine_rounds is None:
        refine_rounds = 0 if quick else DEFAULT_REFINE_ROUNDS
    if refine_rounds < 0:
        raise ValueError(f"refine_rounds must be >= 0, got {refine_rounds}")
    unknown = [a for a in algorithms if a not in ALL_LABELS]
    if unknown:
        raise ValueError(f"unknown algorithm(s) {', '.join(unknown)}; choose from {', '.join(ALL_LABELS)}")
    path = resolve_dataset(dataset)
    threads = threads or available_cores()
    name, metric, measure, train, queries, _, _ = load_dataset(path, num_queries, k)
    output = Path(output) if output else Path("bench-results") / f"{name}.jsonl"
    output.parent.mkdir(parents=True, exist_ok=True)
    settings = Settings(str(path), str(output), uuid.uuid4().hex[:12], k, threads, len(queries),
                        min(single_queries, len(queries)), runs, time.time(), refine_rounds)
    import annlib

    common = {"run_id": settings.run_id, "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "k": k, "threads": threads, "num_queries": len(queries), "single_queries": settings.single_queries,
              "runs": runs, "annlib_version": annlib.__version__, "simd_level": annlib.simd_level(),
              "machine": f"{platform.machine()} {os.cpu_count()} cores", "cpu": _cpu_model(),
              "python": platform.python_version()}
    custom = builds
    builds = (custom or (lambda *shape: definitions(*shape, algorithms, quick, reorder_dtypes)))(
        len(train), train.shape[1], measure, k)
    del train, queries
    print(f"{name}: {metric}, k={k}, {settings.num_queries} queries ({settings.single_queries} one per call), "
          f"{threads} threads, {len(builds)} builds -> {output} (run {settings.run_id})", file=sys.stderr)
    if custom is None and "scann+soar" in algorithms and measure != "dot_product":
        _note(settings, common, name, "scann+soar", "skipped", "ScaNN allows SOAR with dot product only")
    skipped = set()
    for definition in builds:
        missing = missing_module(definition.family)
        if missing:
            if definition.label not in skipped:
                skipped.add(definition.label)
                _note(settings, common, name, definition.label, "skipped",
                      f"{missing} is not installed (pip install \"annlib[bench]\")")
            continue
        failure = _run_isolated(definition, settings, common, timeout)
        if failure:
            _note(settings, common, name, definition.label, "failed", f"{definition.name}: {failure}")
    print(f"[{_elapsed(settings)}] done: {output}", file=sys.stderr)
    return output


def _cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), so results from different machines can be told apart."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _note(settings: Settings, common: dict, dataset: str, label: str, kind: str, reason: str) -> None:
    """Records (and prints) an algorithm that was skipped or a build that failed."""
    print(f"[{_elapsed(settings)}] {label} {kind}: {reason}", file=sys.stderr, flush=True)
    _append(settings.output, dict(common, kind=kind, dataset=dataset, algorithm=label, reason=reason))


def add_arguments(parser) -> None:
    """The options shared by bench/run.py and `annlib bench`."""
    parser.add_argument("datasets", nargs="+", help="ann-benchmarks HDF5 files or annlib.datasets.fetch names")
    parser.add_argument("--algorithms", default=",".join(ALL_LABELS),
                        help=f"comma-separated, from: {', '.join(ALL_LABELS)} (default: all)")
    parser.add_argument("-k", type=int, default=10, help="neighbours per query (default 10)")
    parser.add_argument("--threads", type=int, default=0, help="threads for builds and batches (0 = all cores)")
    parser.add_argument("--queries", type=int, default=0, help="use the first N test queries (0 = all)")
    parser.add_argument("--single-queries", type=int, default=1000,
                        help="queries timed one per call for single-query QPS (default 1000)")
    parser.add_argument("--runs", type=int, default=2, help="timed repetitions per setting, best kept (default 2)")
    parser.add_argument("--output", help="JSON lines file to append to (default bench-results/<dataset>.jsonl)")
    parser.add_argument("--quick", action="store_true", help="one build per algorithm and a short sweep")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per build and sweep")
    parser.add_argument("--refine-rounds", type=int, default=None,
                        help="bisection rounds between each recall target's fastest point and the grid step "
                        f"below it, for every build (default {DEFAULT_REFINE_ROUNDS}; 0 with --quick)")
    parser.add_argument("--reorder-dtypes", default="float32",
                        help="build annlib and ScaNN once per reorder copy type, comma-separated from float32, "
                        "bfloat16, int8 (default float32)")


def main_from_args(args) -> int:
    algorithms = [a.strip() for a in args.algorithms.split(",") if a.strip()]
    if args.output and len(args.datasets) > 1:
        print("note: every dataset appends to the same --output file", file=sys.stderr)
    try:
        for dataset in args.datasets:
            run(dataset, algorithms=algorithms, k=args.k, threads=args.threads, num_queries=args.queries,
                single_queries=args.single_queries, runs=args.runs, output=args.output, quick=args.quick,
                timeout=args.timeout, reorder_dtypes=tuple(t.strip() for t in args.reorder_dtypes.split(",")),
                refine_rounds=args.refine_rounds)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the points measured so far are in the results file", file=sys.stderr)
        return 130
    return 0
