"""`annlib serve` options (kept free of grpc imports so `annlib --help` works
without the service extra installed)."""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field

import annlib

from .loading import is_sharded_location


TOKEN_ENV = "ANNLIB_SERVICE_TOKEN"


@dataclass(frozen=True)
class ServerOptions:
    indexes: list = field(default_factory=list)  # [(name, path)]
    host: str = "127.0.0.1"
    port: int = 50051
    workers: int = 16
    processes: int = 1
    coalesce: bool = False
    metrics_port: int | None = None
    access_log: bool = False
    max_k: int = 1024
    max_candidates: int = 16384
    max_batch: int = 8192
    max_message_bytes: int = 64 << 20
    batch_threads: int = 0
    auth_token: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    enable_admin: bool = False
    drain_seconds: float = 0.0
    grace_seconds: float = 30.0
    data_dir: str | None = None
    group_commit: bool = True
    snapshot_seconds: float = 300.0
    snapshot_wal_mb: float = 256.0


def _name_and_path(text: str):
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index", action="append", default=[], type=_name_and_path, metavar="NAME=PATH",
                        help="serve the saved index at PATH as NAME (repeatable); the directory of a sharded "
                             "index (annlib.distributed) makes this server its coordinator, on the Ray cluster "
                             "at RAY_ADDRESS or a local one; ray://HOST:PORT/PATH: the sharded index at PATH "
                             "on the Ray cluster whose client server listens at HOST:PORT (PATH and --data-dir "
                             "on storage its nodes share)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: loopback only; 0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=50051, help="port (default 50051; 0 picks a free one)")
    parser.add_argument("--workers", type=int, default=16, help="concurrent calls served (default 16)")
    parser.add_argument("--processes", type=int, default=None,
                        help="server processes sharing the port (SO_REUSEPORT) and the memory-mapped indexes; "
                        "0 = one per core. Default: one per core on Linux when read-only, else 1 (writes "
                        "(--data-dir) and --enable-admin need a single process)")
    parser.add_argument("--coalesce", action="store_true",
                        help="search concurrent Search calls together as one batch (off by default: it "
                        "gained nothing on a 2-core machine, where batched search is barely cheaper per query)")
    parser.add_argument("--max-message-mb", type=float, default=64.0,
                        help="largest request or response in MiB (default 64)")
    parser.add_argument("--batch-threads", type=int, default=0,
                        help="threads per SearchBatch call (default 0 = all cores)")
    parser.add_argument("--auth-token-file", help="require 'authorization: Bearer <token>' with the token in this "
                        f"file (or set {TOKEN_ENV})")
    parser.add_argument("--tls-cert", help="PEM certificate chain: serve TLS (with --tls-key)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--enable-admin", action="store_true",
                        help="allow the AdminService RPCs (load/unload indexes from server paths)")
    parser.add_argument("--drain-seconds", type=float, default=0.0,
                        help="on SIGTERM, report NOT_SERVING this long before refusing new calls (default 0)")
    parser.add_argument("--grace-seconds", type=float, default=30.0,
                        help="on SIGTERM, how long running calls may take to finish (default 30)")
    ops = parser.add_argument_group("operations")
    ops.add_argument("--metrics-port", type=int, help="serve Prometheus metrics at http://HOST:PORT/metrics "
                     "(off by default; 0 picks a free port; with --processes N, worker n uses PORT+n)")
    ops.add_argument("--access-log", action="store_true",
                     help="log every call as one JSON line (logger annlib.access, on stderr)")
    ops.add_argument("--max-k", type=int, default=1024, help="largest final_num_neighbors a call may ask for "
                     "(default 1024; never more than the index holds)")
    ops.add_argument("--max-candidates", type=int, default=16384,
                     help="largest pre_reorder_num_neighbors or num_candidates a call may ask for (default 16384)")
    ops.add_argument("--max-batch", type=int, default=8192, help="most queries in one SearchBatch call "
                     "(default 8192)")
    writes = parser.add_argument_group("writes (Upsert and Delete RPCs)")
    writes.add_argument("--data-dir", help="accept writes: each index's write-ahead log and snapshots live in "
                        "DATA_DIR/NAME, and a snapshot there is served in preference to --index's path")
    writes.add_argument("--no-group-commit", dest="group_commit", action="store_false",
                        help="fsync each write on its own instead of one fsync for all writes waiting together")
    writes.add_argument("--snapshot-seconds", type=float, default=300.0,
                        help="snapshot a changed index this often, truncating its log (default 300)")
    writes.add_argument("--snapshot-wal-mb", type=float, default=256.0,
                        help="snapshot sooner once the log holds this many MiB (default 256)")


def options_from_args(args: argparse.Namespace) -> ServerOptions:
    token = os.environ.get(TOKEN_ENV) or None
    if args.auth_token_file:
        with open(args.auth_token_file, encoding="utf-8") as f:
            token = f.read().strip()
        if not token:
            raise ValueError(f"{args.auth_token_file} is empty")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be in [0, 65535], got {args.port}")
    if args.workers < 1 or args.max_message_mb <= 0 or args.batch_threads < 0:
        raise ValueError("--workers must be >= 1, --max-message-mb > 0 and --batch-threads >= 0")
    read_only = not (args.data_dir or args.enable_admin)
    if args.processes is None:  # one GIL per core pays where the kernel spreads connections (Linux)
        processes = annlib.available_cores() if read_only and sys.platform.startswith("linux") else 1
    else:
        processes = args.processes or annlib.available_cores()
    if processes < 0:
        raise ValueError(f"--processes must be >= 0, got {args.processes}")
    sharded = [name for name, path in args.index if is_sharded_location(path)]
    if sharded and processes > 1:
        if args.processes is not None:
            raise ValueError(f"a sharded index ({', '.join(sharded)}) is served by one coordinator process; "
                             "run more servers for more coordinators")
        processes = 1
    if processes > 1 and not read_only:
        raise ValueError("--processes > 1 serves read-only: each process would hold its own copy of the writes "
                         "(--data-dir) or of what is loaded (--enable-admin); run one process for those")
    if min(args.max_k, args.max_candidates, args.max_batch) < 1:
        raise ValueError("--max-k, --max-candidates and --max-batch must be >= 1")
    if args.metrics_port is not None and not 0 <= args.metrics_port <= 65535:
        raise ValueError(f"--metrics-port must be in [0, 65535], got {args.metrics_port}")
    if args.snapshot_seconds <= 0 or args.snapshot_wal_mb <= 0:
        raise ValueError("--snapshot-seconds and --snapshot-wal-mb must be > 0")
    names = [name for name, _ in args.index]
    if len(set(names)) != len(names):
        raise ValueError(f"--index names must be distinct, got {names}")
    return ServerOptions(indexes=list(args.index), host=args.host, port=args.port, workers=args.workers,
                         processes=processes, coalesce=args.coalesce, metrics_port=args.metrics_port,
                         access_log=args.access_log, max_k=args.max_k, max_candidates=args.max_candidates,
                         max_batch=args.max_batch,
                         max_message_bytes=int(args.max_message_mb * (1 << 20)), batch_threads=args.batch_threads,
                         auth_token=token, tls_cert=args.tls_cert, tls_key=args.tls_key,
                         enable_admin=args.enable_admin, drain_seconds=args.drain_seconds,
                         grace_seconds=args.grace_seconds, data_dir=args.data_dir, group_commit=args.group_commit,
                         snapshot_seconds=args.snapshot_seconds, snapshot_wal_mb=args.snapshot_wal_mb)
