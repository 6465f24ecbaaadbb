"""A quantized index built from an .fvecs file larger than the memory it may use.

The index is trained on a sample (Builder.train) and filled by upsert() in chunks
read from the memory-mapped file, inside a Linux memory cgroup whose limit is
below the file's size (so the data can never be resident at once); its recall is
compared with a one-shot build() of the same data, run without the limit.

    python bench/bench_chunked_build.py --points 3000000 --limit-mb 1024    # as root (cgroup v1 or v2)

The file: the SIFT descriptors of ../shared/datasets/sift-150k-128-euclidean.hdf5,
each repeated with small Gaussian jitter up to --points rows (real-valued SIFT
structure, many near-duplicates); queries are that dataset's test rows.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

STAGES = dict(num_leaves=2000, num_leaves_to_search=60, reorder=200, reorder_dtype="int8")
LEAVES = (20, 60, 150)


def stages(builder):
    return (builder.tree(STAGES["num_leaves"], STAGES["num_leaves_to_search"]).score_ah(2)
            .reorder(STAGES["reorder"], dtype=STAGES["reorder_dtype"]))


def make_file(path: Path, points: int, data) -> None:
    """`points` rows of `data.train`, repeated with Gaussian jitter (sigma 2) after the first pass."""
    rng = np.random.default_rng(0)
    with open(path.with_suffix(".tmp"), "wb") as f:
        for start in range(0, points, 100_000):
            stop = min(start + 100_000, points)
            rows = data.train[np.arange(start, stop) % len(data.train)]
            if start >= len(data.train):
                rows = rows + rng.normal(0.0, 2.0, rows.shape).astype(np.float32)
            out = np.empty((stop - start, 129), np.int32)
            out[:, 0] = 128
            out[:, 1:] = np.ascontiguousarray(rows, dtype=np.float32).view(np.int32)
            f.write(out.tobytes())
    os.replace(path.with_suffix(".tmp"), path)


def exact_truth(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top k over the memory-mapped rows, chunk by chunk."""
    best_d = np.full((len(queries), k), np.inf)
    best_i = np.zeros((len(queries), k), np.int64)
    q2 = (queries.astype(np.float64) ** 2).sum(1)[:, None]
    for start in range(0, len(base), 200_000):
        x = np.asarray(base[start:start + 200_000], dtype=np.float64)
        d = q2 - 2 * queries @ x.T + (x ** 2).sum(1)[None, :]
        ids = np.arange(start, start + len(x))
        all_d = np.concatenate([best_d, d], 1)
        all_i = np.concatenate([best_i, np.broadcast_to(ids, d.shape)], 1)
        order = np.argsort(all_d, axis=1, kind="stable")[:, :k]
        best_d, best_i = np.take_along_axis(all_d, order, 1), np.take_along_axis(all_i, order, 1)
    return best_i


def anon_mb() -> float:
    """This process's anonymous (not file-backed) resident memory now, in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def recalls(index, queries, truth) -> dict:
    import annlib

    return {leaves: annlib.recall_at_k(index.search_batched(queries, leaves_to_search=leaves)[0], truth)
            for leaves in LEAVES}


def chunked_build(path: str, work: str, chunk: int, sample_size: int) -> dict:
    """Runs inside the memory limit: train on a sample, upsert the file chunk by chunk, then
    search the queries (the index is not saved: a save exports a compacted copy)."""
    import annlib
    from annlib.datasets import read_fvecs

    start = time.perf_counter()
    base = read_fvecs(path, mmap=True)
    rng = np.random.default_rng(0)
    sample = np.asarray(base[np.sort(rng.choice(len(base), sample_size, replace=False))])
    index = stages(annlib.builder(sample, 10, "squared_l2")).train(progress=False)
    del sample
    trained = time.perf_counter()
    anon = anon_mb()
    for begin in range(0, len(base), chunk):
        rows = np.asarray(base[begin:begin + chunk])
        index.upsert(np.arange(begin, begin + len(rows)), rows)
        anon = max(anon, anon_mb())
    filled = time.perf_counter()
    queries, truth = np.load(Path(work) / "queries.npy"), np.load(Path(work) / "truth.npy")
    return {"train_s": trained - start, "upsert_s": filled - trained, "size": len(index),
            "anon_mb_after_chunks": anon, "recall": recalls(index, queries, truth)}


class MemoryLimit:
    """A memory cgroup (v2 or v1) that this process's children join."""

    def __init__(self, limit_bytes: int):
        v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
        base = Path("/sys/fs/cgroup") if v2 else Path("/sys/fs/cgroup/memory")
        self.dir = base / f"annlib-bench-{os.getpid()}"
        self.dir.mkdir()
        self.v2 = v2
        (self.dir / ("memory.max" if v2 else "memory.limit_in_bytes")).write_text(str(limit_bytes))
        if not v2:
            swap = self.dir / "memory.memsw.limit_in_bytes"
            if swap.exists():
                swap.write_text(str(limit_bytes))  # no escape into swap

    def join_command(self) -> list[str]:
        return ["sh", "-c", f'echo $$ > {self.dir / "cgroup.procs"} && exec "$@"', "sh"]

    def peak_bytes(self) -> int:
        name = "memory.peak" if self.v2 else "memory.max_usage_in_bytes"
        return int((self.dir / name).read_text())

    def failures(self) -> int:
        if self.v2:
            events = dict(line.split() for line in (self.dir / "memory.events").read_text().splitlines())
            return int(events.get("oom_kill", 0))
        return int((self.dir / "memory.failcnt").read_text())

    def close(self):
        self.dir.rmdir()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=3_000_000)
    parser.add_argument("--limit-mb", type=int, default=1024)
    parser.add_argument("--chunk", type=int, default=50_000)
    parser.add_argument("--sample", type=int, default=100_000)
    parser.add_argument("--work", default="bench-results/chunked-build")
    parser.add_argument("--source", default=str(Path(__file__).resolve().parents[2] / "shared" / "datasets" /
                                                "sift-150k-128-euclidean.hdf5"))
    parser.add_argument("--inside", nargs=2, help=argparse.SUPPRESS)  # the child's part
    args = parser.parse_args()
    if args.inside:
        print(json.dumps(chunked_build(args.inside[0], args.inside[1], args.chunk, args.sample)))
        return 0

    import annlib
    from annlib.datasets import read_fvecs, read_hdf5

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"base-{args.points}.fvecs"
    data = read_hdf5(Path(args.source))
    if not path.exists():
        make_file(path, args.points, data)
    queries = data.test[:500]
    del data
    limit = args.limit_mb << 20
    file_bytes = path.stat().st_size
    print(f"file {path}: {args.points:,} x 128 float32, {file_bytes / 2**20:,.0f} MiB; memory limit "
          f"{args.limit_mb} MiB (the whole process: Python, numpy, the index)")
    assert file_bytes > limit, "the file must be larger than the memory limit"

    base = read_fvecs(path, mmap=True)
    np.save(work / "queries.npy", queries)
    truth = exact_truth(base, queries, 10)
    np.save(work / "truth.npy", truth)

    cgroup = MemoryLimit(limit)
    try:
        child = subprocess.run(cgroup.join_command() + [sys.executable, __file__, "--chunk", str(args.chunk),
                                                        "--sample", str(args.sample), "--inside", str(path),
                                                        str(work)],
                               capture_output=True, text=True)
        peak, failures = cgroup.peak_bytes(), cgroup.failures()
    finally:
        cgroup.close()
    if child.returncode != 0:
        print(f"the chunked build failed (exit {child.returncode}; limit hits {failures}, peak "
              f"{peak / 2**20:,.0f} MiB):", child.stdout, child.stderr[-3000:])
        return 1
    report = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"chunked: trained on {args.sample:,} rows in {report['train_s']:.1f} s, upserted {report['size']:,} "
          f"in chunks of {args.chunk:,} in {report['upsert_s']:.1f} s; peak memory (cgroup, page cache "
          f"included) {peak / 2**20:,.0f} MiB of {args.limit_mb} MiB; limit hits {failures}; largest anonymous "
          f"(non-file) resident memory after a chunk {report['anon_mb_after_chunks']:,.0f} MiB")

    start = time.perf_counter()
    one_shot = stages(annlib.builder(np.asarray(base), 10, "squared_l2")).build(progress=False)
    one_shot_s = time.perf_counter() - start
    built = recalls(one_shot, queries, truth)
    for leaves in LEAVES:
        print(f"leaves {leaves:>4}: recall@10 chunked (train + upsert) {report['recall'][str(leaves)]:.4f}, "
              f"one-shot build {built[leaves]:.4f}")
    print(f"one-shot build (no memory limit) took {one_shot_s:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
