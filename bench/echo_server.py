"""The framework's ceiling: a minimal grpcio server with annlib's Search
signature that parses each request and returns a prepared answer of k ids and
scores, with no search. With --work-us N each call first spends N us of its
thread's CPU time holding the GIL: the ceiling of any Python handler whose own
work costs N us (set N to in-process search()'s time to see what the framework
leaves of a search service that adds nothing of its own). It takes `annlib
serve`'s --port, --workers and --processes, so bench/service_load.py can load it
exactly as it loads the real server and print how close the search service
comes to it.

    python bench/echo_server.py --dim 384 --k 10 [--work-us 65] [annlib serve options]
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from concurrent import futures

import grpc

from annlib.service.options import add_arguments, options_from_args
from annlib.service.processes import run_processes
from annlib.v1 import messages_pb2 as pb


def serve_one(options, dim: int, k: int, work_us: float, port: int, announce) -> int:
    answer = pb.SearchResponse(neighbors=pb.Neighbors(ids=list(range(k)), scores=[0.5] * k))
    work_s = work_us * 1e-6

    def search(request, context):
        if len(request.query.data) != 4 * dim:  # touch the request as the real server does
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "wrong size")
        if work_s:
            # This thread's CPU time, not the wall clock: a call preempted meanwhile still does all its work.
            done = time.thread_time() + work_s
            while time.thread_time() < done:
                pass
        return answer

    handlers = {
        "Search": grpc.unary_unary_rpc_method_handler(search, request_deserializer=pb.SearchRequest.FromString,
                                                      response_serializer=pb.SearchResponse.SerializeToString),
        "ListIndexes": grpc.unary_unary_rpc_method_handler(
            lambda request, context: pb.ListIndexesResponse(),
            request_deserializer=pb.ListIndexesRequest.FromString,
            response_serializer=pb.ListIndexesResponse.SerializeToString),
    }
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=options.workers))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("annlib.v1.SearchService", handlers),))
    bound = server.add_insecure_port(f"{options.host}:{port}")
    server.start()
    announce("listening", f"echo server listening on {options.host}:{bound}")
    announce("serving", "serving echo")
    while not stop.wait(0.5):
        pass
    server.stop(5).wait()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dim", type=int, required=True)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--work-us", type=float, default=0.0,
                        help="CPU microseconds each call spends before answering (default 0: none)")
    add_arguments(parser)
    args = parser.parse_args()
    options = options_from_args(args)
    if options.processes > 1:
        return run_processes(options.processes, options.host, options.port,
                             lambda port, announce, _: serve_one(options, args.dim, args.k, args.work_us, port,
                                                                 announce))
    return serve_one(options, args.dim, args.k, args.work_us, options.port,
                     lambda kind, text: print(text, flush=True))


if __name__ == "__main__":
    sys.exit(main())
