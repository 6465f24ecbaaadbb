"""A sharded build of a file several times larger than the memory each shard's worker
may use.

A Ray cluster on this machine: a head node (the driver, the GCS and the build's placing
tasks) and --shards worker nodes, each started by `ray start` inside its own Linux
memory cgroup of --limit-mb (its raylet, the shard actor and any other process of the
node: everything a worker machine would hold), each offering one "shard" resource, which
each shard asks for. The driver trains on a sample of the file and fills the shards
from the memory-mapped file in chunks (annlib.distributed.build(data=path)); then recall@10
is measured against exact neighbours. Reported: the file's size over one worker's limit,
each worker's peak (the cgroup's, page cache included) and limit hits, the driver's peak
resident memory.

    python bench/bench_distributed_build.py --points 8400000 --shards 6 --limit-mb 1024   # as root

The file: SIFT descriptors of ../shared/datasets/sift-150k-128-euclidean.hdf5 repeated with
jitter (bench_chunked_build.make_file).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench_chunked_build import MemoryLimit, exact_truth, make_file  # noqa: E402

PORT = 6391


def ray_start(*args, join=None, block=False):
    command = [sys.executable, "-m", "ray.scripts.scripts", "start", *args, "--disable-usage-stats"]
    if join is not None:
        command = join + command
    env = dict(os.environ)
    if block:
        return subprocess.Popen(command + ["--block"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    subprocess.run(command, env=env, check=True, capture_output=True)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=8_400_000)
    parser.add_argument("--shards", type=int, default=6)
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

    # The benchmark's own cluster, on this machine's interface for its run only: no usage
    # statistics, and no token (the nodes started by `ray start` and this driver would
    # otherwise have to share one).
    os.environ.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    import ray

    import annlib.distributed as dist

    cgroups, nodes = [], []
    try:
        # This machine's own interface (Ray's default); nothing leaves the machine.
        address = f"{ray.util.get_node_ip_address()}:{PORT}"
        ray_start("--head", f"--port={PORT}", "--num-cpus=2", "--include-dashboard=false")
        for shard in range(args.shards):
            cgroups.append(MemoryLimit(limit, name=f"-shard{shard}"))
            nodes.append(ray_start(f"--address={address}", "--num-cpus=0", '--resources={"shard": 1}',
                                   join=cgroups[-1].join_command(), block=True))
        ray.init(address=address, log_to_driver=False, configure_logging=False)
        deadline = time.time() + 60
        while ray.cluster_resources().get("shard", 0) < args.shards and time.time() < deadline:
            time.sleep(0.5)
        rng = np.random.default_rng(0)
        sample = np.asarray(base[np.sort(rng.choice(len(base), args.sample, replace=False))])
        stages = (annlib.builder(sample, 10, "squared_l2").tree(2000, 60, soar_lambda=1.0).score_ah(2)
                  .reorder(200, dtype="int8"))
        start = time.perf_counter()
        sharded = dist.build(stages, num_shards=args.shards, data=str(path), chunk_size=args.chunk,
                             actor_options={"resources": {"shard": 1}}, progress=False)
        built = time.perf_counter() - start
        recall = {leaves: annlib.recall_at_k(sharded.search_batched(queries, leaves_to_search=leaves)[0], truth)
                  for leaves in (20, 60, 150)}
        sizes = sharded.shard_sizes()
        report = {"points": len(sharded), "shard_sizes": sizes, "build_s": round(built, 1),
                  "recall@10 by leaves searched": recall,
                  "worker_peak_mib": [round(c.peak_bytes() / 2**20) for c in cgroups],
                  "worker_limit_hits": [c.failures() for c in cgroups],
                  "driver_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
        print(json.dumps(report, indent=1))
        sharded.shutdown()
        ray.shutdown()
    finally:
        for node in nodes:
            os.killpg(node.pid, signal.SIGTERM)
        for node in nodes:
            node.wait(timeout=60)
        subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "stop", "--force"], capture_output=True)
        time.sleep(1)
        for cgroup in cgroups:
            try:
                cgroup.close()
            except OSError as exc:
                print(f"cgroup {cgroup.dir} left behind: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
