"""What an operator watches: Prometheus metrics (prometheus-client, off unless
--metrics-port) and structured access logs (one JSON object per call on the
logger annlib.access, off unless --access-log). Both come from one server
interceptor around the annlib.v1 RPCs; health and reflection pass untouched.

Metrics:
    annlib_requests_total{method, code}           calls by status code
    annlib_request_seconds{method}                latency histogram
    annlib_index_points{index}                    points held now
    annlib_wal_records{index}, annlib_wal_bytes   log since the last snapshot (writable indexes)
    annlib_last_snapshot_unix_seconds{index}
    annlib_writes_pending{index}                  writes queued, not yet in the log (write lag)
"""
from __future__ import annotations

import json
import logging
import time

import grpc

access_log = logging.getLogger("annlib.access")

_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class Metrics:
    """The metric families, in their own registry (not the process-wide default)."""

    def __init__(self, registry_of_indexes):
        from prometheus_client import CollectorRegistry, Counter, Histogram
        from prometheus_client.core import GaugeMetricFamily

        self.registry = CollectorRegistry()
        self.requests = Counter("annlib_requests", "RPCs served, by method and status code", ("method", "code"),
                                registry=self.registry)
        self.latency = Histogram("annlib_request_seconds", "RPC latency in seconds, by method", ("method",),
                                 buckets=_LATENCY_BUCKETS, registry=self.registry)
        indexes = registry_of_indexes

        class IndexCollector:
            def collect(self):
                points = GaugeMetricFamily("annlib_index_points", "points held by each index", labels=("index",))
                records = GaugeMetricFamily("annlib_wal_records", "write-ahead log records since the last snapshot",
                                            labels=("index",))
                size = GaugeMetricFamily("annlib_wal_bytes", "write-ahead log bytes since the last snapshot",
                                         labels=("index",))
                snapshot = GaugeMetricFamily("annlib_last_snapshot_unix_seconds",
                                             "when the last snapshot was written", labels=("index",))
                pending = GaugeMetricFamily("annlib_writes_pending", "writes queued, not yet logged",
                                            labels=("index",))
                for hosted in indexes.all():
                    points.add_metric((hosted.name,), hosted.index.size())
                    if hosted.writer is not None:
                        stats = hosted.writer.stats()
                        records.add_metric((hosted.name,), stats["wal_records"])
                        size.add_metric((hosted.name,), stats["wal_bytes"])
                        snapshot.add_metric((hosted.name,), stats["last_snapshot_unix_s"])
                        pending.add_metric((hosted.name,), stats["pending"])
                return [points, records, size, snapshot, pending]

        self.registry.register(IndexCollector())

    def serve(self, host: str, port: int) -> int:
        """Starts the /metrics HTTP endpoint; returns its port."""
        from prometheus_client import start_http_server

        server, _ = start_http_server(port, addr=host, registry=self.registry)
        return server.server_port


class ObservingInterceptor(grpc.ServerInterceptor):
    """Counts, times and logs every annlib.v1 call."""

    def __init__(self, metrics: Metrics | None, log_access: bool):
        self._metrics = metrics
        self._log_access = log_access

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith("/annlib.") or handler.unary_unary is None:
            return handler
        name = method.rsplit("/", 1)[-1]
        behavior = handler.unary_unary

        def observed(request, context):
            start = time.perf_counter()
            code = "OK"
            try:
                return behavior(request, context)
            except Exception:
                code = _code_name(context.code()) or "UNKNOWN"
                raise
            finally:
                seconds = time.perf_counter() - start
                if self._metrics is not None:
                    self._metrics.requests.labels(name, code).inc()
                    self._metrics.latency.labels(name).observe(seconds)
                if self._log_access:
                    access_log.info(json.dumps({
                        "ts": round(time.time(), 6), "method": name, "code": code, "ms": round(seconds * 1e3, 3),
                        "peer": context.peer(), "index": getattr(request, "index", None) or None,
                        "request_bytes": request.ByteSize()}))

        return grpc.unary_unary_rpc_method_handler(observed, request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)


def _code_name(code) -> str | None:
    return code.name if isinstance(code, grpc.StatusCode) else None
