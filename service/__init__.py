"""annlib's gRPC retrieval service (install with `pip install "annlib[service]"`).

    annlib serve --index words=/data/words-index --port 50051

Modules, one job each:
    codec     numpy arrays <-> annlib.v1 messages, request checks
    registry  the hosted indexes by name, thread-safe load/unload
    servicer  the RPCs: decode, call the library, encode
    auth      bearer-token check on every call but health and reflection
    server    options, start-up, health, reflection, graceful shutdown
The protos are in service/protos/annlib/v1; their generated stubs are the
package annlib.v1.
"""
