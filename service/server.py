"""Start-up and shutdown of the gRPC server.

Health (grpc.health.v1) reports NOT_SERVING until at least one index is
loaded, and again from SIGTERM on: the server then waits --drain-seconds
(load balancers see NOT_SERVING and stop sending), refuses new calls, lets
running ones finish within --grace-seconds, and exits 0.
"""
from __future__ import annotations

import dataclasses
import logging
import signal
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

import annlib
from annlib.v1 import service_pb2, service_pb2_grpc

from . import reflection
from .auth import BearerTokenInterceptor
from .batcher import SearchBatcher
from .codec import ServiceError
from .observability import Metrics, ObservingInterceptor
from .options import ServerOptions
from .processes import run_processes
from .registry import IndexRegistry, WriteOptions
from .servicer import AdminServicer, Limits, SearchServicer

log = logging.getLogger("annlib.service")

SERVICE_NAMES = tuple(s.full_name for s in service_pb2.DESCRIPTOR.services_by_name.values())


class RetrievalServer:
    def __init__(self, options: ServerOptions, extra_interceptors=()):
        self.options = options
        writes = None
        if options.data_dir:
            writes = WriteOptions(Path(options.data_dir), group_commit=options.group_commit,
                                  snapshot_seconds=options.snapshot_seconds,
                                  snapshot_wal_bytes=int(options.snapshot_wal_mb * (1 << 20)))
        self.registry = IndexRegistry(writes)
        self.metrics = Metrics(self.registry) if options.metrics_port is not None else None
        interceptors = list(extra_interceptors)
        if self.metrics is not None or options.access_log:
            interceptors.append(ObservingInterceptor(self.metrics, options.access_log))
        if options.auth_token:
            interceptors.append(BearerTokenInterceptor(options.auth_token))
        limits = [("grpc.max_receive_message_length", options.max_message_bytes),
                  ("grpc.max_send_message_length", options.max_message_bytes)]
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=options.workers),
                                  interceptors=interceptors, options=limits)
        self.health = health.HealthServicer(experimental_non_blocking=True)
        self._update_health()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        cores = annlib.available_cores()
        per_process = max(1, cores // options.processes)  # processes share the cores
        self.batcher = SearchBatcher(per_process) if options.coalesce else None
        service_pb2_grpc.add_SearchServiceServicer_to_server(
            SearchServicer(self.registry, max_response_bytes=options.max_message_bytes,
                           batch_threads=options.batch_threads or (per_process if options.processes > 1 else 0),
                           batcher=self.batcher,
                           limits=Limits(options.max_k, options.max_candidates, options.max_batch)), self.server)
        service_pb2_grpc.add_AdminServiceServicer_to_server(
            AdminServicer(self.registry, enabled=options.enable_admin, on_change=self._update_health), self.server)
        reflection.enable(SERVICE_NAMES + (health.SERVICE_NAME,), self.server)
        address = f"{options.host}:{options.port}"
        if options.tls_cert:
            with open(options.tls_key, "rb") as k, open(options.tls_cert, "rb") as c:
                credentials = grpc.ssl_server_credentials([(k.read(), c.read())])
            self.port = self.server.add_secure_port(address, credentials)
        else:
            self.port = self.server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"cannot bind {address}")

    def _update_health(self):
        status = health_pb2.HealthCheckResponse.SERVING if len(self.registry) else \
            health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("",) + SERVICE_NAMES:
            self.health.set(name, status)

    def start(self):
        self.server.start()

    def load_initial_indexes(self):
        for name, path in self.options.indexes:
            hosted = self.registry.load(name, path)
            log.info("loaded index %r from %s", name, hosted.path)
        self._update_health()

    def shutdown(self):
        """Drain, then stop: running calls finish, new ones are refused."""
        self.health.enter_graceful_shutdown()
        if self.options.drain_seconds > 0:
            time.sleep(self.options.drain_seconds)
        self.server.stop(self.options.grace_seconds).wait()
        self.registry.close()  # the acknowledged writes are in the log already; this snapshots them
        if self.batcher is not None:
            self.batcher.close()


def serve(options: ServerOptions, extra_interceptors=()) -> int:
    """Runs until SIGTERM or SIGINT; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if options.processes > 1:
        return run_processes(options.processes, options.host, options.port,
                             lambda port, announce, number: serve_one(options, extra_interceptors, port, announce,
                                                                      number))

    def announce(kind, text):
        print(f"error: {text}" if kind == "error" else text, file=sys.stderr if kind == "error" else sys.stdout,
              flush=True)

    return serve_one(options, extra_interceptors, options.port, announce)


def serve_one(options: ServerOptions, extra_interceptors, port: int, announce, number: int = 0) -> int:
    """One server process (worker `number` of --processes): start, load, serve until SIGTERM,
    drain, stop."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = RetrievalServer(dataclasses.replace(options, port=port), extra_interceptors)
    server.start()
    scheme = "TLS" if options.tls_cert else "plaintext"
    announce("listening", f"annlib service listening on {options.host}:{server.port} ({scheme}, "
             f"auth {'on' if options.auth_token else 'off'}, admin {'on' if options.enable_admin else 'off'})")
    try:
        server.load_initial_indexes()
    except ServiceError as exc:
        announce("error", exc.message)
        server.server.stop(0).wait()
        server.registry.close()
        return 2
    announce("serving", f"serving {len(server.registry)} index(es): "
             f"{', '.join(h.name for h in server.registry.all()) or '-'}")
    if server.metrics is not None:  # worker n of --processes serves its metrics on the port after n
        metrics_port = server.metrics.serve(options.host, options.metrics_port + number if options.metrics_port else 0)
        print(f"metrics on http://{options.host}:{metrics_port}/metrics", flush=True)
    while not stop.wait(0.5):
        pass
    print("shutting down: draining, then finishing running calls", flush=True)
    server.shutdown()
    print("stopped", flush=True)
    return 0
