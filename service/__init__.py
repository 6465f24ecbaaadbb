"""annlib's gRPC retrieval service (install with `pip install "annlib[service]"`).

    annlib serve --index words=/data/words-index --port 50051

Modules, one job each:
    codec          numpy arrays <-> annlib.v1 messages, request checks
    wal            the write-ahead log's records and segments
    durable        logged, group-committed, snapshotted writes to one index
    registry       the hosted indexes by name, thread-safe load/unload
    loading        opening a saved index of any kind (a sharded one starts Ray)
    batcher        concurrent Search calls searched as one batch (--coalesce)
    servicer       the RPCs: decode, call the library, encode
    auth           bearer-token check on every call but health and reflection
    observability  Prometheus metrics and JSON access logs
    reflection     server reflection under v1 and v1alpha
    processes      one server process per core on one port (--processes)
    server         options, start-up, health, reflection, graceful shutdown
The protos are in service/protos/annlib/v1; their generated stubs are the
package annlib.v1.
"""

from annlib._forking import grpc_fork_handlers_off

# Before any module here imports gRPC: a server that opens a sharded index starts Ray
# processes from a process running gRPC (annlib/_forking.py says why that needs this).
grpc_fork_handlers_off()
