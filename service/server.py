"""Start-up and shutdown of the gRPC server.

Health (grpc.health.v1) reports NOT_SERVING until at least one index is
loaded, and again from SIGTERM on: the server then waits --drain-seconds
(load balancers see NOT_SERVING and stop sending), refuses new calls, lets
running ones finish within --grace-seconds, and exits 0.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from annlib.v1 import service_pb2, service_pb2_grpc

from . import reflection
from .auth import BearerTokenInterceptor
from .codec import ServiceError
from .options import ServerOptions
from .registry import IndexRegistry, WriteOptions
from .servicer import AdminServicer, SearchServicer

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
        interceptors = list(extra_interceptors)
        if options.auth_token:
            interceptors.append(BearerTokenInterceptor(options.auth_token))
        limits = [("grpc.max_receive_message_length", options.max_message_bytes),
                  ("grpc.max_send_message_length", options.max_message_bytes)]
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=options.workers),
                                  interceptors=interceptors, options=limits)
        self.health = health.HealthServicer(experimental_non_blocking=True)
        self._update_health()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        service_pb2_grpc.add_SearchServiceServicer_to_server(
            SearchServicer(self.registry, max_response_bytes=options.max_message_bytes,
                           batch_threads=options.batch_threads), self.server)
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


def serve(options: ServerOptions, extra_interceptors=()) -> int:
    """Runs until SIGTERM or SIGINT; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = RetrievalServer(options, extra_interceptors)
    server.start()
    scheme = "TLS" if options.tls_cert else "plaintext"
    print(f"annlib service listening on {options.host}:{server.port} ({scheme}, "
          f"auth {'on' if options.auth_token else 'off'}, admin {'on' if options.enable_admin else 'off'})",
          flush=True)
    try:
        server.load_initial_indexes()
    except ServiceError as exc:
        print(f"error: {exc.message}", file=sys.stderr, flush=True)
        server.server.stop(0).wait()
        server.registry.close()
        return 2
    print(f"serving {len(server.registry)} index(es): {', '.join(h.name for h in server.registry.all()) or '-'}",
          flush=True)
    while not stop.wait(0.5):
        pass
    print("shutting down: draining, then finishing running calls", flush=True)
    server.shutdown()
    print("stopped", flush=True)
    return 0
