"""A sharded build of a file several times larger than the memory each shard's worker
may use.

On a local Ray instance, every worker process (each shard's actor, each placing task's
worker) joins a Linux memory cgroup of its own (limit --limit-mb) as it starts (the
job's runtime_env worker_process_setup_hook): the limit bounds what a worker allocates
from then on (the shard's index, NumPy, annlib); what its start-up took before (Ray's
worker, ~100-200 MB) is charged elsewhere, so each shard process's peak resident memory
(VmHWM, start-up included) is reported too. The driver trains on a
sample of the file and fills the shards from the memory-mapped file in chunks
(annlib.distributed.build(data=path)); then recall@10 is measured against exact
neighbours. Reported: the file's size over one worker's limit, each worker's peak (the
cgroup's) and limit hits, the driver's peak anonymous memory during the build.

    python bench/bench_distributed_build.py --points 8400000 --shards 10 --limit-mb 1024   # as root, cgroup v1

The file: SIFT descriptors of ../shared/datasets/sift-150k-128-euclidean.hdf5 repeated with
jitter (bench_chunked_build.make_file).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench_chunked_build import exact_truth, make_file  # noqa: E402

CGROUPS = Path("/sys/fs/cgroup/memory")
PREFIX = "annlib-shard-worker-"


def join_memory_cgroup():
    """worker_process_setup_hook: this worker process into a memory cgroup of its own."""
    limit = int(os.environ["ANNLIB_BENCH_LIMIT_BYTES"])
    group = CGROUPS / f"{PREFIX}{os.getpid()}"
    group.mkdir()
    (group / "memory.limit_in_bytes").write_text(str(limit))
    swap = group / "memory.memsw.limit_in_bytes"
    if swap.exists():
        swap.write_text(str(limit))
    (group / "cgroup.procs").write_text(str(os.getpid()))


class AnonPeak:
    """The driver's peak anonymous resident memory (RssAnon, KiB), sampled every 0.1 s: its
    RSS also counts the file's mapped pages and the object store's shared pages it touched."""

    def __init__(self):
        self.peak, self._done = 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._done.wait(0.1):
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    self.peak = max(self.peak, int(line.split()[1]))

    def stop(self):
        self._done.set()
        self._thread.join()


def _peak_rss_mib(pid: int) -> int:
    """A process's peak resident memory (VmHWM), start-up included."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    return -1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=8_400_000)
    parser.add_argument("--shards", type=int, default=10)
    parser.add_argument("--limit-mb", type=int, default=1024)
    parser.add_argument("--chunk", type=int, default=50_000)
    parser.add_argument("--sample", type=int, default=100_000)
    parser.add_argument("--work", default="bench-results/distributed-build")
    parser.add_argument("--source", default=str(Path(__file__).resolve().parents[2] / "shared" / "datasets" /
                                                "sift-150k-128-euclidean.hdf5"))
    parser.add_argument("--truth-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    import annlib
    from annlib.datasets import read_fvecs, read_hdf5

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"base-{args.points}.fvecs"
    data = read_hdf5(Path(args.source))
    if not path.exists():
        make_file(path, args.points, data)
    queries = np.ascontiguousarray(data.test[:500])
    base = read_fvecs(path, mmap=True)
    truth_file = work / f"truth-{args.points}.npy"
    if args.truth_only:
        np.save(truth_file, exact_truth(base, queries, 10))
        return 0
    if not truth_file.exists():  # in a child process: the driver's peak memory is the build's
        subprocess.run([sys.executable, __file__, "--truth-only", "--points", str(args.points), "--work",
                        str(work), "--source", args.source], check=True)
    truth = np.load(truth_file)
    limit = args.limit_mb << 20
    file_bytes = path.stat().st_size
    print(f"file {path}: {args.points:,} x 128 float32, {file_bytes / 2**20:,.0f} MiB = "
          f"{file_bytes / limit:.1f}x the {args.limit_mb} MiB each of {args.shards} shard workers may use")

    # The benchmark's own Ray instance, on this machine only, no usage statistics.
    os.environ.update(RAY_USAGE_STATS_ENABLED="0", ANNLIB_BENCH_LIMIT_BYTES=str(limit))
    import ray

    import annlib.distributed as dist

    # Every worker process of the job (the shards' actors and the build's placing tasks)
    # joins a memory cgroup of its own as it starts.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1",
             configure_logging=False, runtime_env={"worker_process_setup_hook": join_memory_cgroup,
                                                   "env_vars": {"ANNLIB_BENCH_LIMIT_BYTES": str(limit)}})
    try:
        rng = np.random.default_rng(0)
        sample = np.asarray(base[np.sort(rng.choice(len(base), args.sample, replace=False))])
        stages = (annlib.builder(sample, 10, "squared_l2").tree(2000, 60, soar_lambda=1.0).score_ah(2)
                  .reorder(200, dtype="int8"))
        anon = AnonPeak()
        start = time.perf_counter()
        sharded = dist.build(stages, num_shards=args.shards, data=str(path), chunk_size=args.chunk,
                             progress=False)
        built = time.perf_counter() - start
        anon.stop()
        recall = {leaves: annlib.recall_at_k(sharded.search_batched(queries, leaves_to_search=leaves)[0], truth)
                  for leaves in (20, 60, 150)}
        pids = [status["pid"] for status in ray.get([actor.status.remote() for actor in sharded._actors])]
        groups = [CGROUPS / f"{PREFIX}{pid}" for pid in pids]
        report = {"points": len(sharded), "shard_sizes": sharded.shard_sizes(), "build_s": round(built, 1),
                  "recall@10 by leaves searched": recall,
                  "worker_peak_mib": [round(int((g / "memory.max_usage_in_bytes").read_text()) / 2**20)
                                      for g in groups],
                  "worker_limit_hits": [int((g / "memory.failcnt").read_text()) for g in groups],
                  "worker_process_peak_rss_mib": [_peak_rss_mib(pid) for pid in pids],
                  "any_worker_peak_mib": max(round(int((g / "memory.max_usage_in_bytes").read_text()) / 2**20)
                                             for g in CGROUPS.glob(f"{PREFIX}*")),
                  "driver_peak_anon_mib_during_build": round(anon.peak / 1024),
                  "driver_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
        print(json.dumps(report, indent=1))
        sharded.shutdown()
    finally:
        ray.shutdown()
        time.sleep(2)
        for group in CGROUPS.glob(f"{PREFIX}*"):
            try:
                group.rmdir()
            except OSError as exc:
                print(f"cgroup {group} left behind: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
