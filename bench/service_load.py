"""Load test of the gRPC service: N concurrent clients for a fixed duration
against a real `annlib serve` on loopback, next to in-process search QPS and
next to the framework's own ceiling on this machine.

    python bench/service_load.py ../shared/datasets/words-100k-384-angular.hdf5 \
        [--clients 16] [--duration 60] [--index SAVED_DIR] [--client-processes 2] \
        [--server-args "--processes 2"] [--no-echo] [--profile OUT.txt] \
        [--server-cpus 1 --client-cpus 0] [--cpp-echo build/echo_cpp/echo_server]

Builds the index a user gets for --recall (autopilot; or loads --index),
starts the server in a subprocess, and runs --clients client threads spread
over --client-processes processes (Python clients need the extra processes to
keep up), each on its own connection calling Search with one test query at a
time. Prints QPS,
p50/p99/max latency, the error count, recall@10 of what the server returned,
and the in-process QPS of searcher.search() from as many threads as cores.
Client and server share this machine's cores: the ratio is what one box
serves over gRPC compared with calling the library directly. With
--server-cpus and --client-cpus they run on separate cores instead (as clients
on other machines would), the servers' default process count and the
in-process threads following the server's cores.

The ceiling: the same clients, messages and server options against a minimal
grpcio server (bench/echo_server.py) whose Search parses the request and
returns a prepared answer of the same size, with no search at all. With
--work-ceiling a second echo server also spends, in each call, the CPU time one
in-process search() took (holding the GIL): the ceiling of any Python handler
doing that much work, which is what the framework leaves of a search service
that added nothing of its own.
--cpp-echo adds the same ceiling for a C++ gRPC server (bench/echo_cpp/echo_server.cc,
built as its header says): what a front end off the Python interpreter would leave.
--profile samples the search server with py-spy (if installed) for the whole
load and writes the hottest frames to OUT.
"""
from __future__ import annotations

import argparse
import atexit
import multiprocessing
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def client_process(address, index, queries, threads, duration, out, cpus=None):
    """Runs `threads` clients in this process (on `cpus` if given); puts (latencies, errors, ids) on out."""
    if cpus:
        os.sched_setaffinity(0, cpus)
    import grpc

    from annlib.service.codec import to_matrix
    from annlib.v1 import messages_pb2 as pb
    from annlib.v1 import service_pb2_grpc as rpc

    requests = [pb.SearchRequest(index=index, query=to_matrix(q)) for q in queries]
    latencies, errors, answers = [], [0], {}
    lock = threading.Lock()
    # One connection per client, as separate client programs would have: channels to one
    # address otherwise share a connection, and a server of several processes on one port
    # (SO_REUSEPORT) hands each connection, not each call, to one of them.
    channels = [grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(threads)]
    stubs = [rpc.SearchServiceStub(channel) for channel in channels]
    for stub in stubs:
        stub.ListIndexes(pb.ListIndexesRequest(), timeout=30)  # connected before the clock starts
    stop_at = time.perf_counter() + duration

    def run(offset):
        stub, mine, failed, i = stubs[offset], [], 0, offset
        while time.perf_counter() < stop_at:
            j = i % len(requests)
            start = time.perf_counter()
            try:
                response = stub.Search(requests[j], timeout=10)
                mine.append(time.perf_counter() - start)
                answers.setdefault(j, list(response.neighbors.ids))
            except grpc.RpcError:
                failed += 1
            i += threads
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for channel in channels:
        channel.close()
    out.put((latencies, errors[0], answers))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_process_qps(searcher, queries, threads, duration):
    counts = [0] * threads
    stop_at = time.perf_counter() + duration

    def run(t):
        i = t
        while time.perf_counter() < stop_at:
            searcher.search(queries[i % len(queries)])
            counts[t] += 1
            i += threads

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(counts) / (time.perf_counter() - start)


def start_server(cmd, cpus=None):
    """Starts a server (on `cpus` if given) that prints 'listening on HOST:PORT' and 'serving ...';
    (process, port)."""
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, preexec_fn=pin)
    port = None
    for line in server.stdout:
        if "listening on" in line:
            port = int(line.split("listening on ")[1].split()[0].rsplit(":", 1)[1])
        if line.startswith("serving "):
            break
    if port is None:
        server.kill()
        raise SystemExit(f"the server did not start: {' '.join(cmd)}")
    return server, port


def process_cpus(pid: int) -> dict[int, float]:
    """CPU seconds of a process and of each of its descendants (a server with worker processes)."""
    cpus = {pid: cpu_seconds(pid)}
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        cpus.update(process_cpus(int(child)))
    return cpus


def run_load(cmd, args, queries, label, profile=None):
    """Starts the server, runs the clients, stops it; prints and returns the figures."""
    server, port = start_server(cmd, args.server_cpus)
    spy = None
    try:
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        per = [args.clients // args.client_processes + (i < args.clients % args.client_processes)
               for i in range(args.client_processes)]
        procs = [ctx.Process(target=client_process, args=(f"127.0.0.1:{port}", "bench", queries, n, args.duration,
                                                         out, args.client_cpus)) for n in per if n]
        start, cpus_before = time.perf_counter(), process_cpus(server.pid)
        for p in procs:
            p.start()
        if profile:
            spy = subprocess.Popen(["py-spy", "record", "--pid", str(server.pid), "--subprocesses", "--duration",
                                    str(int(args.duration)), "--format", "raw", "--output", profile, "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        results = []
        while len(results) < len(procs):
            try:
                results.append(out.get(timeout=5))
            except queue.Empty:
                if sum(p.exitcode is not None for p in procs) > len(results):
                    raise SystemExit("a client process died (see its traceback above)") from None
        cpus = {pid: t - cpus_before.get(pid, 0.0) for pid, t in process_cpus(server.pid).items()}
        server_cpu = sum(cpus.values())
        for p in procs:
            p.join()
        wall = time.perf_counter() - start
        if spy is not None:
            spy.wait(120)
    finally:
        server.terminate()
        server.wait(60)
    latencies = np.concatenate([np.asarray(r[0]) for r in results]) * 1e3
    errors = sum(r[1] for r in results)
    answers = {j: ids for r in results for j, ids in r[2].items()}
    qps = len(latencies) / args.duration
    print(f"\n{label}: Search, {args.clients} clients in {len(procs)} processes, {args.duration:.0f} s "
          f"({wall:.1f} s with start-up)")
    print(f"  calls {len(latencies):,}  errors {errors}")
    print(f"  QPS {qps:,.0f}   latency p50 {np.percentile(latencies, 50):.2f} ms   "
          f"p99 {np.percentile(latencies, 99):.2f} ms   max {latencies.max():.2f} ms")
    print(f"  server CPU per call {server_cpu / max(len(latencies), 1) * 1e6:.0f} us"
          + (f"; CPU s per server process {', '.join(f'{t:.1f}' for t in cpus.values())}" if len(cpus) > 1 else ""))
    return qps, answers


def cpu_list(text: str) -> set:
    """'0', '1,3' or '2-3' -> a set of CPU numbers."""
    cpus = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def summarize_profile(raw: str, top: int = 25) -> None:
    """py-spy's raw output (one 'frame;frame;... count' line per stack) -> the frames with the
    most samples anywhere on the stack (inclusive), next to the self time."""
    inclusive, own, total = {}, {}, 0
    for line in Path(raw).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n, frames = int(count), stack.split(";")
        total += n
        for f in set(frames):
            inclusive[f] = inclusive.get(f, 0) + n
        own[frames[-1]] = own.get(frames[-1], 0) + n
    lines = [f"{total} samples; share of samples with the frame on the stack (self share)"]
    for f, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * n / total:5.1f}% ({100 * own.get(f, 0) / total:4.1f}%)  {f}")
    Path(raw).with_suffix(".summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", help="ann-benchmarks HDF5 file (queries and ground truth)")
    parser.add_argument("--index", help="a saved index to serve (default: build one from the dataset)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--recall", type=float, default=0.95,
                        help="the index is what builder(...).autopilot(target_recall=RECALL) builds (default 0.95)")
    parser.add_argument("--server-args", default="", help="more `annlib serve` options, e.g. '--processes 2'")
    parser.add_argument("--no-echo", dest="echo", action="store_false",
                        help="skip the framework ceiling (the echo server)")
    parser.add_argument("--work-ceiling", action="store_true",
                        help="also load the echo server spending one in-process search's CPU time per call")
    parser.add_argument("--profile", help="py-spy the search server during the load; raw samples to this file")
    parser.add_argument("--cpp-echo", metavar="PATH",
                        help="also load this build of bench/echo_cpp/echo_server.cc (a C++ gRPC echo server)")
    parser.add_argument("--server-cpus", type=cpu_list, help="run the servers on these CPUs, e.g. 1 or 2-3")
    parser.add_argument("--client-cpus", type=cpu_list, help="run the clients on these CPUs, e.g. 0")
    args = parser.parse_args(argv)
    import annlib
    from annlib.datasets import read_hdf5

    data = read_hdf5(args.dataset)
    queries, truth = np.ascontiguousarray(data.test, dtype=np.float32), data.neighbors[:, :10]
    if args.index:
        path = Path(args.index)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="annlib-load-"))
        atexit.register(shutil.rmtree, workdir, ignore_errors=True)  # the index built for this run
        measure = data.distance_measure
        start = time.perf_counter()
        built = annlib.builder(data.train, 10, measure).autopilot(target_recall=args.recall).build()
        path = workdir / "index"
        built.save(path)
        print(f"built {measure} index in {time.perf_counter() - start:.1f} s -> {path}")
    searcher = annlib.load(path)
    local_ids = searcher.search_batched(queries)[0]
    local_recall = np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(local_ids, truth)])

    everywhere = os.sched_getaffinity(0) if args.server_cpus else None
    if args.server_cpus:  # the library on the server's cores (threads inherit this thread's affinity)
        os.sched_setaffinity(0, args.server_cpus)
    cores = annlib.available_cores()
    local_qps = in_process_qps(searcher, queries, cores, min(args.duration, 20.0))
    if everywhere:
        os.sched_setaffinity(0, everywhere)
    print(f"in-process search(): {local_qps:,.0f} QPS with {cores} threads"
          + (f" on CPUs {sorted(args.server_cpus)}" if args.server_cpus else "") + f"; recall@10 {local_recall:.3f}")

    # The installed console script: `python -m annlib` from a source checkout would import the
    # unbuilt source tree instead of the installed package.
    script = Path(sys.executable).parent / "annlib"
    common = ["--port", "0", "--workers", str(max(args.clients, 1)), *args.server_args.split()]
    ceiling = None
    echo = [sys.executable, str(Path(__file__).resolve().parent / "echo_server.py"), "--dim",
            str(queries.shape[1]), "--k", "10", *common]
    if args.echo:
        ceiling, _ = run_load(echo, args, queries, "framework ceiling (echo server, no search)")
    if args.cpp_echo:
        cpp_ceiling, _ = run_load([args.cpp_echo, "0", str(queries.shape[1]), "10"], args, queries,
                                  "C++ gRPC echo server (bench/echo_cpp), no search")
    work_us, work_ceiling = cores / local_qps * 1e6, None
    if args.work_ceiling:
        work_ceiling, _ = run_load([*echo, "--work-us", f"{work_us:.1f}"], args, queries,
                                   f"echo server spending {work_us:.0f} us of CPU a call")
    qps, answers = run_load([str(script), "serve", "--index", f"bench={path}", *common], args, queries,
                            "annlib serve", args.profile)
    served_recall = np.mean([len(np.intersect1d(ids, truth[j])) / 10 for j, ids in answers.items()])
    print(f"  recall@10 of served answers {served_recall:.3f} ({len(answers)} distinct queries)")
    print(f"  in-process: {work_us:.0f} us of a core per search")
    print(f"\nserver QPS / in-process QPS = {qps / local_qps:.2f}")
    if ceiling:
        print(f"server QPS / framework ceiling = {qps / ceiling:.2f}  (ceiling / in-process = {ceiling / local_qps:.2f})")
    if args.cpp_echo:
        print(f"server QPS / C++ echo ceiling = {qps / cpp_ceiling:.2f}  (that ceiling / in-process = "
              f"{cpp_ceiling / local_qps:.2f})")
    if work_ceiling:
        print(f"server QPS / ceiling with the search's work = {qps / work_ceiling:.2f}  "
              f"(that ceiling / framework ceiling = {work_ceiling / ceiling:.2f})" if ceiling else
              f"server QPS / ceiling with the search's work = {qps / work_ceiling:.2f}")
    if args.profile:
        summarize_profile(args.profile)


if __name__ == "__main__":
    main()
