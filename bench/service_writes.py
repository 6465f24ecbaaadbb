"""Write throughput of the gRPC service: N concurrent clients send Upsert calls
(one point each, ids of their own) for a fixed time against a real `annlib serve
--data-dir` on loopback, with group commit and with one fsync per write.

    python bench/service_writes.py SAVED_INDEX [--clients 16] [--duration 20] [--rows 1]

Every reply means the write was in the write-ahead log and fsynced. Prints
writes/s, p50/p99 latency and errors for both modes, and their ratio. The index
is copied first (the data directory is a temporary one), so it is left as it was.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from service_load import start_server  # noqa: E402


def load(address, dim, clients, duration, rows):
    import grpc

    from annlib.service.codec import to_matrix
    from annlib.v1 import messages_pb2 as pb
    from annlib.v1 import service_pb2_grpc as rpc

    latencies, errors = [], [0]
    lock = threading.Lock()
    with grpc.insecure_channel(address) as channel:
        stub = rpc.SearchServiceStub(channel)
        stub.ListIndexes(pb.ListIndexesRequest(), timeout=30)
        stop_at = time.perf_counter() + duration

        def run(t):
            rng = np.random.default_rng(t)
            mine, failed, n = [], 0, 0
            while time.perf_counter() < stop_at:
                ids = [10_000_000 + t * 1_000_000 + n * rows + j for j in range(rows)]
                request = pb.UpsertRequest(index="bench", ids=ids,
                                           vectors=to_matrix(rng.standard_normal((rows, dim)).astype(np.float32)))
                start = time.perf_counter()
                try:
                    stub.Upsert(request, timeout=30)
                    mine.append(time.perf_counter() - start)
                except grpc.RpcError:
                    failed += 1
                n += 1
            with lock:
                latencies.extend(mine)
                errors[0] += failed

        threads = [threading.Thread(target=run, args=(t,)) for t in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return np.asarray(latencies) * 1e3, errors[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("index", help="a saved single-vector index")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--rows", type=int, default=1, help="points per Upsert call")
    args = parser.parse_args(argv)
    import annlib

    dim = annlib.load(args.index).dim
    script = Path(sys.executable).parent / "annlib"
    rates = {}
    for label, flags in (("group commit", []), ("fsync per write", ["--no-group-commit"])):
        work = Path(tempfile.mkdtemp(prefix="annlib-writes-"))
        try:
            shutil.copytree(args.index, work / "index")
            server, port = start_server([str(script), "serve", "--index", f"bench={work / 'index'}", "--port", "0",
                                         "--workers", str(args.clients), "--data-dir", str(work / "data"), *flags])
            try:
                latencies, errors = load(f"127.0.0.1:{port}", dim, args.clients, args.duration, args.rows)
            finally:
                server.terminate()
                server.wait(300)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        rates[label] = len(latencies) / args.duration
        print(f"{label}: {args.clients} clients, {args.rows} point(s) per call, {args.duration:.0f} s: "
              f"{rates[label]:,.0f} writes/s ({rates[label] * args.rows:,.0f} points/s)   "
              f"p50 {np.percentile(latencies, 50):.2f} ms   p99 {np.percentile(latencies, 99):.2f} ms   "
              f"errors {errors}", flush=True)
    print(f"group commit / fsync per write = {rates['group commit'] / rates['fsync per write']:.2f}")


if __name__ == "__main__":
    main()
